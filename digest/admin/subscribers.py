"""Topics and subscribers in the admin.

Status changes go through `subscribers.services` (the same functions the public pages use), and
preference edits through `services.update_preferences`, so the admin never writes a status or a
schedule by hand. Each subscriber has two extra pages: their last digests with what each held,
and a preview of their next digest exactly as it would be emailed, which records and sends nothing.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import Truncator
from django.views.decorators.clickjacking import xframe_options_sameorigin

from digest.delivery.claims import is_waiting
from digest.models import Candidate, Delivery
from digest.ops import operations
from digest.ops.stats import Followers, topics_with_followers
from subscribers import services
from subscribers.forms import PreferencesForm
from subscribers.models import Subscriber, Topic

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

RECENT_DIGESTS = 20
PREVIEW_LIMIT = 10  # "send a preview to me" emails the operator once per selected subscriber
# The email's own markup, in a frame of its own: inline styles (the email's CSS is inlined) but
# still no scripts, and framed only by our admin page.
PREVIEW_CSP = "default-src 'none'; img-src * data:; style-src 'unsafe-inline'; frame-ancestors 'self'"


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "followers", "keyword_list", "position")
    list_editable = ("position",)
    search_fields = ("name", "description", "keywords")
    prepopulated_fields = {"slug": ("name",)}

    def get_queryset(self, request):
        return topics_with_followers()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        topic = self.get_object(request, object_id) if request.method == "GET" else None
        if topic is not None:
            # "Try other words" asks by GET, leaving the saved topic untouched until Save.
            description = request.GET.get("preview_description", topic.description)[:5000]
            keywords = request.GET.get("preview_keywords", topic.keywords)[:2000]
            extra_context = {
                **(extra_context or {}),
                "preview_description": description,
                "preview_keywords": keywords,
                "preview_matches": operations.preview_topic_matches(topic.name, description, keywords),
                "preview_papers": operations.TOPIC_PREVIEW_PAPERS,
            }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="active followers", ordering="followers")
    def followers(self, topic: "WithAnnotations[Topic, Followers]") -> int:
        return topic.followers

    @admin.display(description="keywords")
    def keyword_list(self, topic: Topic) -> str:
        return Truncator(topic.keywords).chars(80)


class SubscriberAdminForm(forms.ModelForm, PreferencesForm):
    """The preference fields and checks of the subscriber's own manage page, on the model's row."""

    class Meta:
        model = Subscriber
        fields = services.SCALAR_PREFERENCES + ("topics",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["authors"] = "\n".join(self.instance.authors or ())


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    form = SubscriberAdminForm
    list_display = (
        "email",
        "status",
        "frequency",
        "schedule",
        "topic_names",
        "created_at",
        "confirmed_at",
        "next_delivery_at",
    )
    list_filter = ("status", "frequency", "category_mode", "topics", "created_at")
    search_fields = ("email",)
    actions = ["send_preview_to_me", "resend_confirmation", "pause", "resume", "unsubscribe"]
    readonly_fields = (
        "email",
        "status",
        "created_at",
        "confirmed_at",
        "unsubscribed_at",
        "confirmation_sent_at",
        "next_delivery_at",
        "bounce_count",
    )
    fieldsets = (
        (None, {"fields": ("email", "status")}),
        ("What they follow", {"fields": ("topics", "keywords", "interests", "categories", "category_mode", "authors")}),
        ("When and how much", {"fields": ("frequency", "weekday", "delivery_hour", "timezone", "max_papers")}),
        (
            "History",
            {
                "fields": (
                    "created_at",
                    "confirmed_at",
                    "unsubscribed_at",
                    "confirmation_sent_at",
                    "next_delivery_at",
                    "bounce_count",
                )
            },
        ),
    )

    def get_queryset(self, request):
        # One query for the topics of a whole page; a COUNT annotation would group the whole table.
        return super().get_queryset(request).prefetch_related("topics")

    def has_add_permission(self, request):
        # People sign themselves up (double opt-in); operators use `manage.py subscribe`.
        return False

    @admin.display(description="topics")
    def topic_names(self, subscriber: Subscriber) -> str:
        return Truncator(", ".join(topic.name for topic in subscriber.topics.all())).chars(80)

    @admin.display(description="schedule")
    def schedule(self, subscriber: Subscriber) -> str:
        day = (
            f"{['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][subscriber.weekday % 7]} "
            if subscriber.frequency == "weekly"
            else ""
        )
        return f"{day}{subscriber.delivery_hour:02d}:00 {subscriber.timezone}"

    # --- Saving: preferences through the service, so a schedule change reschedules -----------

    def save_model(self, request, obj, form, change):
        pass  # the preferences are stored in save_related, once the topics are known

    def save_related(self, request, form, formsets, change):
        # A fresh row: the form already changed the instance, and the service compares schedules.
        services.update_preferences(Subscriber.objects.get(pk=form.instance.pk), form.preferences())

    # --- Deleting: through the service, which locks the row first as a retraining does -------

    def delete_model(self, request, obj):
        services.delete_subscriber(obj)

    def delete_queryset(self, request, queryset):
        for subscriber in queryset:
            services.delete_subscriber(subscriber)

    # --- Actions ----------------------------------------------------------------------------

    def _count(
        self,
        request: HttpRequest,
        queryset: QuerySet[Subscriber],
        change: Callable[[Subscriber], bool],
        done: str,
        skipped: str,
    ) -> None:
        changed = sum(1 for subscriber in queryset if change(subscriber))
        self.message_user(request, f"{changed} {done}.")
        if changed < len(queryset):
            self.message_user(request, f"{len(queryset) - changed} {skipped}.", messages.WARNING)

    @admin.action(description="Send a preview of the next digest to me", permissions=["view"])
    def send_preview_to_me(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        user = request.user
        if not user.is_authenticated or not user.email:
            self.message_user(
                request, "Your admin account has no email address to send the preview to.", messages.ERROR
            )
            return
        chosen = list(queryset[: PREVIEW_LIMIT + 1])
        if len(chosen) > PREVIEW_LIMIT:
            self.message_user(request, f"Select at most {PREVIEW_LIMIT} subscribers to preview.", messages.ERROR)
            return
        for subscriber in chosen:
            operations.send_preview(subscriber, user.email)
        self.message_user(request, f"Sent {len(chosen)} preview(s) to {user.email}; nothing was recorded.")

    @admin.action(description="Resend the confirmation email", permissions=["change"])
    def resend_confirmation(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        self._count(
            request,
            queryset,
            services.send_confirmation,
            "confirmation email(s) queued",
            "skipped: not pending, or one was sent within the hour",
        )

    @admin.action(description="Pause", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        self._count(
            request, queryset, services.pause, "subscriber(s) paused", "skipped: only active subscribers can pause"
        )

    @admin.action(description="Resume (paused subscribers only)", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        self._count(
            request, queryset, services.resume, "subscriber(s) resumed", "skipped: only paused subscribers can resume"
        )

    @admin.action(description="Unsubscribe", permissions=["change"])
    def unsubscribe(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        self._count(request, queryset, services.unsubscribe, "subscriber(s) unsubscribed", "were already unsubscribed")

    # --- Extra pages: last digests, next digest preview ---------------------------------------

    def get_urls(self):
        def view(function):
            return self.admin_site.admin_view(function)

        return [
            path("<int:object_id>/digests/", view(self.digests_view), name="subscribers_subscriber_digests"),
            path("<int:object_id>/preview/", view(self.preview_view), name="subscribers_subscriber_preview"),
            path(
                "<int:object_id>/preview/html/",
                view(self.preview_html_view),
                name="subscribers_subscriber_preview_html",
            ),
        ] + super().get_urls()

    def _subscriber(self, request: HttpRequest, object_id: int) -> Subscriber:
        subscriber = get_object_or_404(Subscriber, pk=object_id)
        if not self.has_view_permission(request, subscriber):
            raise PermissionDenied
        return subscriber

    def _page(
        self, request: HttpRequest, subscriber: Subscriber, template: str, title: str, **context: object
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "original": subscriber,
                "subscriber": subscriber,
                "title": title,
                **context,
            },
        )

    def digests_view(self, request: HttpRequest, object_id: int) -> TemplateResponse:
        subscriber = self._subscriber(request, object_id)
        deliveries = list(
            Delivery.objects.filter(subscriber=subscriber).order_by("-scheduled_for", "-id")[:RECENT_DIGESTS]
        )
        # Their candidates in one query, between the lowest and the highest bound of their ranges.
        ranged = [d for d in deliveries if d.holds_any]
        low = min((d.candidates_after for d in ranged), default=0)
        high = max((d.candidates_through for d in ranged), default=0)
        candidates = (
            Candidate.objects.filter(subscriber=subscriber, id__gt=low, id__lte=high)
            .select_related("paper")
            .order_by("-score", "id")
        )
        for delivery in deliveries:
            delivery.held = []  # type: ignore[attr-defined]  # what the template lists
        for candidate in candidates:
            for delivery in deliveries:
                if delivery.holds(candidate.id):
                    delivery.held.append(candidate)  # type: ignore[attr-defined]
        waiting = Candidate.objects.filter(is_waiting(), subscriber=subscriber).count()
        return self._page(
            request,
            subscriber,
            "admin/subscribers/subscriber/digests.html",
            f"Last digests of {subscriber.email}",
            deliveries=deliveries,
            waiting=waiting,
        )

    def preview_view(self, request: HttpRequest, object_id: int) -> TemplateResponse:
        subscriber = self._subscriber(request, object_id)
        preview = operations.preview_next_digest(subscriber)
        message = preview.message
        headers = {
            "From": message.from_email,
            "To": ", ".join(message.to),
            "Subject": message.subject,
            **message.extra_headers,
        }
        return self._page(
            request,
            subscriber,
            "admin/subscribers/subscriber/preview.html",
            f"Next digest of {subscriber.email}",
            preview=preview,
            headers=headers,
            html_url=reverse("admin:subscribers_subscriber_preview_html", args=[subscriber.pk]),
        )

    @xframe_options_sameorigin
    def preview_html_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        subscriber = self._subscriber(request, object_id)
        response = HttpResponse(operations.preview_next_digest(subscriber).html)
        response["Content-Security-Policy"] = PREVIEW_CSP
        return response
