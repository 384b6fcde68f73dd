"""The operator's view of papers, feeds, matching and deliveries.

Every changelist costs a fixed number of queries however many rows it pages through: foreign
keys come with `list_select_related`, the feeds of a page of papers with one prefetch, counts
with `annotate`. No `date_hierarchy`: its SELECT DISTINCT over every row's date is the slowest
query of a large table; the day filter below offers recent days without reading any.
"""

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, TypedDict

from django.contrib import admin, messages
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.text import Truncator

from digest.delivery.claims import is_waiting
from digest.delivery.picks import author_names
from digest.models import Candidate, Delivery, Feed, MatchRun, Paper, PaperSource
from digest.ops import operations

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class PapersSeen(TypedDict):
    papers_seen: int


ERROR_CHARS = 80


def has_category(category: str) -> Q:
    """Papers whose JSON list of categories holds `category`.

    A text match on the quoted value works alike on SQLite and PostgreSQL (JSON `contains` does
    not exist on SQLite), and the quotes stop "cs.L" from matching "cs.LG".
    """
    return Q(categories__icontains=json.dumps(category))


def short(text: str, chars: int = ERROR_CHARS) -> str:
    return Truncator(text).chars(chars)


class ViewOnlyAdmin(admin.ModelAdmin):
    """Rows written by the pipeline: the operator reads them, never edits them by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CategoryFilter(admin.SimpleListFilter):
    title = "category"
    parameter_name = "category"
    SAMPLE = 1000  # the most recent papers say which categories are worth offering
    SHOWN = 40

    def lookups(self, request, model_admin):
        counts: Counter[str] = Counter()
        for categories in Paper.objects.order_by("-id").values_list("categories", flat=True)[: self.SAMPLE]:
            counts.update(c for c in categories or () if isinstance(c, str))
        return [(name, name) for name in sorted(name for name, _ in counts.most_common(self.SHOWN))]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(has_category(value)) if value else queryset


class ScheduledDayFilter(admin.SimpleListFilter):
    """One UTC day of `scheduled_for`: the last two weeks offered, any `?day=YYYY-MM-DD` accepted."""

    title = "day (UTC)"
    parameter_name = "day"
    OFFERED_DAYS = 14

    def lookups(self, request, model_admin):
        today = timezone.now().date()
        days = [today - timedelta(days=n) for n in range(self.OFFERED_DAYS)]
        return [(day.isoformat(), "Today" if day == today else day.strftime("%a %d %b")) for day in days]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return queryset.none()
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        return queryset.filter(scheduled_for__gte=start, scheduled_for__lt=start + timedelta(days=1))


class PaperSourceInline(admin.TabularInline):
    model = PaperSource
    fields = ("feed", "first_seen")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin):
    list_display = ("title_short", "sources", "category_list", "upvotes", "published", "first_seen")
    list_filter = (CategoryFilter, "feeds", "published", "first_seen")
    search_fields = ("title", "abstract", "authors", "arxiv_id")
    inlines = [PaperSourceInline]
    readonly_fields = [f.name for f in Paper._meta.concrete_fields] + ["author_list"]
    fieldsets = (
        (None, {"fields": ("title", "author_list", "abstract", "url", "pdf_url", "code_url", "project_url")}),
        ("Identity", {"fields": ("arxiv_id", "guid", "version", "doi", "journal_ref", "comment")}),
        ("Classification and trend", {"fields": ("primary_category", "categories", "upvotes", "num_comments")}),
        ("From Hugging Face", {"fields": ("organization", "thumbnail_url")}),
        ("Dates", {"fields": ("published", "updated", "first_seen", "last_changed")}),
        ("Raw", {"fields": ("authors",), "classes": ("collapse",)}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("feeds")

    def has_add_permission(self, request):
        return False

    @admin.display(description="title", ordering="title")
    def title_short(self, paper: Paper) -> str:
        return short(paper.title, 110)

    @admin.display(description="source(s)")
    def sources(self, paper: Paper) -> str:
        return ", ".join(str(feed) for feed in paper.feeds.all())

    @admin.display(description="categories")
    def category_list(self, paper: Paper) -> str:
        return ", ".join(str(c) for c in paper.categories or ())

    @admin.display(description="authors")
    def author_list(self, paper: Paper) -> str:
        return ", ".join(author_names(paper.authors or ()))


@admin.register(Feed)
class FeedAdmin(admin.ModelAdmin):
    list_display = ("__str__", "enabled", "healthy", "last_polled_at", "last_run", "error", "papers_seen")
    list_filter = ("enabled", "kind")
    search_fields = ("url", "name")
    actions = ["poll_now", "enable", "disable"]
    readonly_fields = (
        "last_polled_at",
        "last_success_at",
        "last_error",
        "last_new",
        "last_updated",
        "last_unchanged",
        "last_skipped",
        "polls",
        "failed_polls",
        "failures_in_a_row",
        "etag",
        "last_modified",
        "created_at",
    )
    fieldsets = (
        (None, {"fields": ("url", "name", "kind", "enabled")}),
        (
            "Last run",
            {
                "fields": (
                    "last_polled_at",
                    "last_success_at",
                    "last_error",
                    "last_new",
                    "last_updated",
                    "last_unchanged",
                    "last_skipped",
                )
            },
        ),
        ("Errors", {"fields": ("polls", "failed_polls", "failures_in_a_row")}),
        ("HTTP cache", {"fields": ("etag", "last_modified", "created_at"), "classes": ("collapse",)}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(papers_seen=Count("sightings"))

    @admin.display(boolean=True, description="OK")
    def healthy(self, feed: Feed) -> bool | None:
        if feed.last_polled_at is None:
            return None
        return not feed.last_error

    @admin.display(description="last run")
    def last_run(self, feed: Feed) -> str:
        if feed.last_polled_at is None:
            return "never polled"
        return (
            f"{feed.last_new} new, {feed.last_updated} updated, "
            f"{feed.last_unchanged} unchanged, {feed.last_skipped} skipped"
        )

    @admin.display(description="last error")
    def error(self, feed: Feed) -> str:
        return short(feed.last_error)

    @admin.display(description="papers", ordering="papers_seen")
    def papers_seen(self, feed: "WithAnnotations[Feed, PapersSeen]") -> int:
        return feed.papers_seen

    @admin.action(description="Poll now (queued to a worker)", permissions=["change"])
    def poll_now(self, request: HttpRequest, queryset: QuerySet[Feed]) -> None:
        queued = operations.poll_now(queryset.values_list("id", flat=True))
        self.message_user(request, f"Queued {queued} feed(s) for polling; refresh in a moment to see the result.")

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Feed]) -> None:
        self.message_user(request, f"Enabled {queryset.update(enabled=True)} feed(s).")

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Feed]) -> None:
        self.message_user(request, f"Disabled {queryset.update(enabled=False)} feed(s).")


@admin.register(MatchRun)
class MatchRunAdmin(ViewOnlyAdmin):
    list_display = ("id", "started_at", "finished_at", "duration", "papers", "subscribers", "progress", "candidates")
    list_filter = ("started_at",)

    @admin.display(description="chunks done")
    def progress(self, run: MatchRun) -> str:
        return f"{run.chunks_done}/{run.chunks}"

    @admin.display(description="duration")
    def duration(self, run: MatchRun) -> str:
        if run.finished_at is None:
            return "running"
        return f"{(run.finished_at - run.started_at).total_seconds():.1f} s"


class WaitingFilter(admin.SimpleListFilter):
    """Candidates waiting for a digest, or taken by one (in a delivery's range)."""

    title = "digest"
    parameter_name = "waiting"

    def lookups(self, request, model_admin):
        return [("yes", "Waiting"), ("no", "In a digest")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(is_waiting())
        if self.value() == "no":
            return queryset.exclude(is_waiting())
        return queryset


@admin.register(Candidate)
class CandidateAdmin(ViewOnlyAdmin):
    list_display = ("subscriber", "paper_title", "score", "relevance", "reason", "created_at", "digest")
    list_select_related = ("subscriber", "paper")
    list_filter = (WaitingFilter, "created_at")
    search_fields = ("subscriber__email", "paper__title", "reason")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Candidate]:
        holder = Delivery.objects.filter(
            subscriber_id=OuterRef("subscriber_id"),
            candidates_after__lt=OuterRef("id"),
            candidates_through__gte=OuterRef("id"),
        )
        return super().get_queryset(request).annotate(digest_period=Subquery(holder.values("period")[:1]))

    @admin.display(description="paper", ordering="paper__title")
    def paper_title(self, candidate: Candidate) -> str:
        return short(candidate.paper.title, 90)

    @admin.display(description="digest")
    def digest(self, candidate: Candidate) -> str:
        return getattr(candidate, "digest_period", None) or "waiting"


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "subscriber",
        "period",
        "status",
        "scheduled_for",
        "sent_at",
        "attempts",
        "paper_count",
        "error",
        "message_id",
    )
    list_select_related = ("subscriber",)
    list_filter = ("status", ScheduledDayFilter, ("sent_at", admin.DateFieldListFilter))
    search_fields = ("subscriber__email", "message_id", "period")
    readonly_fields = [*(f.name for f in Delivery._meta.concrete_fields), "papers"]
    actions = ["retry_failed"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="last error")
    def error(self, delivery: Delivery) -> str:
        return short(delivery.last_error)

    @admin.display(description="papers (best first; those past the paper count were counted as more)")
    def papers(self, delivery: Delivery) -> str:
        candidates = delivery.candidates.select_related("paper").order_by("-score", "id")
        return (
            format_html_join(
                "", "<div>{} ({}): {}</div>", ((c.paper.title, f"{c.score:.3f}", c.reason) for c in candidates)
            )
            or "none"
        )

    @admin.action(description="Retry failed deliveries", permissions=["change"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        requeued = operations.retry_failed(queryset.values_list("id", flat=True))
        skipped = queryset.count() - len(requeued)
        self.message_user(request, f"Queued {len(requeued)} failed delivery(ies) again.")
        if skipped:
            self.message_user(request, f"Left {skipped} that were not failed.", messages.WARNING)
