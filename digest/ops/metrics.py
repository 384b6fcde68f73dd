"""`/metrics`: what Prometheus scrapes, read from the database and the broker at scrape time.

The work is spread over many worker processes on many machines, so a counter kept in one process
would count one worker's share. Every figure here is read when Prometheus asks, from the rows all
workers write (deliveries, match runs, feeds, candidates) and from the broker's queues: any web
process answers with the same numbers. The retention purge deletes old rows, so counts over rows
are gauges over a stated window, not ever-growing counters; the exceptions are the feeds' poll
counts, kept on each Feed row (which no purge deletes): true counters. Send chunks add their
timing to a per-minute row (digest/delivery/chunk_timing.py), so a scrape adds up at most a day of
minutes, not a day of chunks. docs/operations.md names every metric for a Grafana board.

Staff only, or `Authorization: Bearer <METRICS_TOKEN>`; anyone else gets a 404.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from digest.delivery.chunk_timing import bucket_field
from digest.delivery.refusal_alarm import message_refusals
from digest.matching.runs import covered_by_a_later_run
from digest.models import (
    SEND_CHUNK_BUCKETS_MS,
    Candidate,
    Delivery,
    Feed,
    MatchChunk,
    MatchRun,
    Paper,
    SendTally,
    TextVector,
)
from digest.ops import stats
from digest.ops.access import staff_or_bearer
from digest.ops.health import redis_client
from subscribers.models import Subscriber

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Digests are counted over the deliveries scheduled this far back: one day's digests, whatever
# the retention period keeps.
DIGEST_WINDOW = timedelta(hours=24)
RECENT_SENDS = timedelta(minutes=5)
REFUSED_PREFIX = "message refused:"  # how a refused message's last_error begins (mail/refusals.py)
# Seconds from the slot a digest was due to the mail server's 250, and of a match run, end to end.
DELAY_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0)
MATCH_BUCKETS = (10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)
# Above this many rows PostgreSQL's estimate stands in for counting the candidates one by one (a
# million rows take ~0.2 s to count, at every scrape).
EXACT_COUNT_LIMIT = 100_000
SIZED_TABLES = (Candidate, Delivery, MatchChunk, MatchRun, Paper, Subscriber, TextVector)


@dataclass(frozen=True)
class DigestCounts:
    """Deliveries scheduled in the window, by status ("refused": failed, the message refused)."""

    by_status: dict[str, int]
    sent_recently: int
    delay_buckets: list[tuple[float, int]]  # (upper bound in seconds, digests sent within it)
    delay_count: int
    delay_sum: float


def digest_counts(now: datetime) -> DigestCounts:
    """One query over the deliveries of the window (a range on the scheduled_for index)."""
    sent = Q(status=Delivery.Status.SENT)
    in_bucket = {
        f"le_{int(bound)}": Count("id", filter=sent & Q(sent_at__lte=F("scheduled_for") + timedelta(seconds=bound)))
        for bound in DELAY_BUCKETS
    }
    rows = (
        Delivery.objects.order_by()
        .filter(scheduled_for__gte=now - DIGEST_WINDOW)
        .values("status")
        .annotate(
            n=Count("id"),
            refused=Count("id", filter=Q(last_error__startswith=REFUSED_PREFIX)),
            recent=Count("id", filter=sent & Q(sent_at__gte=now - RECENT_SENDS)),
            delay=Sum(F("sent_at") - F("scheduled_for"), filter=sent),
            **in_bucket,
        )
    )
    by_status = dict.fromkeys([*Delivery.Status.values, "refused"], 0)
    buckets = dict.fromkeys(DELAY_BUCKETS, 0)
    recent, delay_sum = 0, 0.0
    for row in rows:
        refused = row["refused"] if row["status"] == Delivery.Status.FAILED else 0
        by_status[row["status"]] += row["n"] - refused
        by_status["refused"] += refused
        recent += row["recent"]
        delay_sum += row["delay"].total_seconds() if row["delay"] else 0.0
        for bound in DELAY_BUCKETS:
            buckets[bound] += row[f"le_{int(bound)}"]
    return DigestCounts(
        by_status=by_status,
        sent_recently=recent,
        delay_buckets=sorted(buckets.items()),
        delay_count=by_status[Delivery.Status.SENT],
        delay_sum=delay_sum,
    )


@dataclass(frozen=True)
class SendChunks:
    """Send chunks that finished in the window, from the per-minute SendTally rows."""

    buckets: list[tuple[float, int]]  # (upper bound in seconds, chunks that took at most that)
    count: int
    seconds: float
    digests: int
    seconds_recently: float  # chunk seconds of the last RECENT_SENDS


def send_chunks(now: datetime) -> SendChunks:
    """One query over at most a day of minute rows, however many digests went."""
    within = {bucket_field(bound): Sum(bucket_field(bound)) for bound in SEND_CHUNK_BUCKETS_MS}
    totals = SendTally.objects.filter(minute__gte=now - DIGEST_WINDOW).aggregate(
        chunks=Sum("chunks"),
        digests=Sum("chunk_digests"),
        ms=Sum("chunk_ms"),
        recent_ms=Sum("chunk_ms", filter=Q(minute__gte=now - RECENT_SENDS)),
        **within,
    )
    return SendChunks(
        buckets=[(bound / 1000, totals[bucket_field(bound)] or 0) for bound in SEND_CHUNK_BUCKETS_MS],
        count=totals["chunks"] or 0,
        seconds=(totals["ms"] or 0) / 1000,
        digests=totals["digests"] or 0,
        seconds_recently=(totals["recent_ms"] or 0) / 1000,
    )


def waiting_deliveries() -> dict[str, int]:
    """Deliveries queued or being sent, however old (the status index holds few of them)."""
    waiting = (Delivery.Status.QUEUED, Delivery.Status.SENDING)
    counts = dict(Delivery.objects.order_by().filter(status__in=waiting).values_list("status").annotate(n=Count("id")))
    return {status: counts.get(status, 0) for status in waiting}


@dataclass(frozen=True)
class MatchRuns:
    durations: list[float]  # seconds, of the runs that finished in the window
    last: MatchRun | None  # the last finished run
    unfinished: int  # under way, or lost and not yet covered by a later run
    superseded: int  # unfinished, but a later run covers their papers (their chunks store nothing)


def match_runs(now: datetime) -> MatchRuns:
    """Three queries; match runs are a few dozen a day."""
    finished = MatchRun.objects.filter(finished_at__isnull=False)
    recent = finished.filter(finished_at__gte=now - DIGEST_WINDOW).values_list("started_at", "finished_at")
    covered = list(
        MatchRun.objects.filter(finished_at__isnull=True)
        .annotate(covered=covered_by_a_later_run())
        .values_list("covered", flat=True)
    )
    return MatchRuns(
        durations=[(done - started).total_seconds() for started, done in recent if done is not None],
        last=finished.order_by("-finished_at", "-id").first(),
        unfinished=covered.count(False),
        superseded=covered.count(True),
    )


def queue_depths() -> dict[str, int] | None:
    """Tasks waiting in each queue (`stats.queue_depths`); all zero when tasks run in-process."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return dict.fromkeys(stats.queue_names(), 0)
    return stats.queue_depths()


def unacknowledged_tasks() -> int | None:
    """Tasks a Redis broker handed to workers that have not acknowledged them yet."""
    if not settings.REDIS_URL or settings.CELERY_TASK_ALWAYS_EAGER:
        return None
    try:
        return cast(int, redis_client(settings.REDIS_URL).hlen("unacked"))
    except Exception:  # unknown: left out
        return None


@dataclass(frozen=True)
class FeedState:
    name: str  # the feed's name, or its address
    failing: bool  # its last poll left an error
    last_success: datetime | None
    last_new: int
    polls: int
    failed_polls: int
    failures_in_a_row: int


def feed_states() -> list[FeedState]:
    """Each enabled feed, as its polls left it (digest/papers/ingestion.py records them)."""
    fields = ("name", "url", "last_error", "last_success_at", "last_new", "polls", "failed_polls", "failures_in_a_row")
    return [
        FeedState(
            name=feed.name or feed.url,
            failing=bool(feed.last_error),
            last_success=feed.last_success_at,
            last_new=feed.last_new,
            polls=feed.polls,
            failed_polls=feed.failed_polls,
            failures_in_a_row=feed.failures_in_a_row,
        )
        for feed in Feed.objects.filter(enabled=True).order_by("url").only(*fields)
    ]


def estimated_rows(model: type[Candidate]) -> int | None:
    """PostgreSQL's estimate of a table's rows (kept by ANALYZE), or None where there is none."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] >= 0 else None


def candidates_stored() -> int:
    """Candidate rows: counted, or PostgreSQL's estimate above EXACT_COUNT_LIMIT (counting tens of
    millions of rows would take seconds at every scrape)."""
    estimate = estimated_rows(Candidate)
    if estimate is not None and estimate > EXACT_COUNT_LIMIT:
        return estimate
    return Candidate.objects.count()


def table_bytes() -> dict[str, int]:
    """PostgreSQL: each main table's size on disk, indexes and TOAST included; elsewhere nothing."""
    if connection.vendor != "postgresql":
        return {}
    tables = [model._meta.db_table for model in SIZED_TABLES]
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, pg_total_relation_size(name::regclass) FROM unnest(%s::text[]) AS name", [tables])
        return {name: int(size) for name, size in cursor.fetchall()}


def _timestamp(moment: datetime | None) -> float:
    return moment.timestamp() if moment else 0.0


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _labelled(name: str, documentation: str, label: str, values: dict[str, int] | dict[str, float]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family


def _histogram(name: str, documentation: str, buckets: list[tuple[float, int]], count: int, total: float) -> Metric:
    # A gauge histogram: its buckets cover a sliding window, so they may go down.
    pairs = [(repr(bound), value) for bound, value in buckets] + [("+Inf", count)]
    return GaugeHistogramMetricFamily(name, documentation, buckets=pairs, gsum_value=total)


class PaperboyCollector(Collector):
    """Every metric, read at scrape time (docs/operations.md lists them)."""

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        now = timezone.now()
        yield from self.digests(now)
        yield from self.matching(now)
        yield from self.broker()
        yield from self.papers()
        yield _gauge(
            "paperboy_scrape_seconds",
            "Seconds this scrape spent reading the database and the broker.",
            time.perf_counter() - started,
        )

    def digests(self, now: datetime) -> Iterator[Metric]:
        counts = digest_counts(now)
        yield _labelled(
            "paperboy_digests",
            "Digests scheduled in the last 24 hours, by status (refused: failed because the message was refused).",
            "status",
            counts.by_status,
        )
        yield _gauge(
            "paperboy_digests_sent_last_5m",
            "Digests the mail server accepted in the last 5 minutes (of those scheduled in the last 24 hours).",
            counts.sent_recently,
        )
        yield _histogram(
            "paperboy_digest_delay_seconds",
            "Seconds from a digest's slot to the mail server accepting it, for digests sent of those "
            "scheduled in the last 24 hours.",
            counts.delay_buckets,
            counts.delay_count,
            counts.delay_sum,
        )
        chunks = send_chunks(now)
        yield _histogram(
            "paperboy_send_chunk_duration_seconds",
            "Seconds a send chunk took, claim to last verdict, for chunks that claimed digests and "
            "finished in the last 24 hours.",
            chunks.buckets,
            chunks.count,
            chunks.seconds,
        )
        yield _gauge(
            "paperboy_send_chunk_digests",
            "Digests claimed by the send chunks that finished in the last 24 hours.",
            chunks.digests,
        )
        yield _gauge(
            "paperboy_send_chunk_seconds_last_5m",
            "Seconds spent in send chunks that finished in the last 5 minutes, all workers together.",
            chunks.seconds_recently,
        )
        yield _labelled(
            "paperboy_deliveries_waiting",
            "Deliveries queued (first try or retry) or being sent, whenever scheduled.",
            "status",
            waiting_deliveries(),
        )
        refusals = message_refusals(now=now)
        yield _gauge(
            "paperboy_refusal_window_tried",
            "Digests tried over the refusal alarm's window (MESSAGE_REFUSAL_WINDOW_MINUTES).",
            refusals.tried,
        )
        yield _gauge(
            "paperboy_refusal_window_refused",
            "Digests refused as messages over the refusal alarm's window.",
            refusals.refused,
        )
        yield _gauge(
            "paperboy_refusal_alarm",
            "1 while the refused-message alarm is raised (/healthz degraded).",
            int(refusals.alarming),
        )
        subscribers = dict(Subscriber.objects.order_by().values_list("status").annotate(n=Count("id")))
        yield _labelled(
            "paperboy_subscribers",
            "Subscribers by status.",
            "status",
            {status: subscribers.get(status, 0) for status in Subscriber.Status.values},
        )

    def matching(self, now: datetime) -> Iterator[Metric]:
        runs = match_runs(now)
        buckets = [(bound, sum(1 for d in runs.durations if d <= bound)) for bound in MATCH_BUCKETS]
        yield _histogram(
            "paperboy_match_run_duration_seconds",
            "Seconds from a match run's start to its last chunk, for runs finished in the last 24 hours.",
            buckets,
            len(runs.durations),
            sum(runs.durations),
        )
        last = runs.last
        duration = (last.finished_at - last.started_at).total_seconds() if last and last.finished_at else 0.0
        yield _gauge("paperboy_match_run_last_duration_seconds", "Seconds the last finished match run took.", duration)
        yield _gauge(
            "paperboy_match_run_last_finished_timestamp_seconds",
            "When the last match run finished (Unix time; 0: never).",
            _timestamp(last.finished_at if last else None),
        )
        yield _gauge(
            "paperboy_match_run_last_papers", "New papers in the last finished match run.", last.papers if last else 0
        )
        yield _gauge(
            "paperboy_match_run_last_subscribers",
            "Subscribers the last finished match run matched.",
            last.subscribers if last else 0,
        )
        yield _gauge(
            "paperboy_match_runs_unfinished",
            "Match runs whose chunks are not all done and whose papers no later run covers.",
            runs.unfinished,
        )
        yield _gauge(
            "paperboy_match_runs_superseded",
            "Unfinished match runs whose papers a later run covers (lost, or superseded by --all).",
            runs.superseded,
        )
        yield _gauge(
            "paperboy_candidates_stored",
            "Candidate rows (matches kept for digests and their web copies); "
            "on PostgreSQL the planner's estimate above 100,000.",
            candidates_stored(),
        )

    def broker(self) -> Iterator[Metric]:
        depths = queue_depths()
        yield _gauge("paperboy_broker_up", "1 when the broker answered this scrape.", int(depths is not None))
        if depths is not None:
            yield _labelled("paperboy_queue_depth", "Tasks waiting in each Celery queue.", "queue", depths)
        unacked = unacknowledged_tasks()
        if unacked is not None:
            yield _gauge(
                "paperboy_queue_unacknowledged", "Tasks workers took from Redis and have not finished.", unacked
            )

    def papers(self) -> Iterator[Metric]:
        failing = GaugeMetricFamily(
            "paperboy_feed_failing", "1 when the last poll of an enabled feed failed.", labels=["feed"]
        )
        success = GaugeMetricFamily(
            "paperboy_feed_last_success_timestamp_seconds",
            "When an enabled feed was last polled without error (Unix time; 0: never).",
            labels=["feed"],
        )
        new = GaugeMetricFamily(
            "paperboy_feed_last_new_papers", "New papers the last poll of a feed found.", labels=["feed"]
        )
        polls = CounterMetricFamily("paperboy_feed_polls", "Polls of an enabled feed, ever.", labels=["feed"])
        errors = CounterMetricFamily(
            "paperboy_feed_errors",
            "Polls of an enabled feed that left an error (failed, or lost entries), ever.",
            labels=["feed"],
        )
        in_a_row = GaugeMetricFamily(
            "paperboy_feed_consecutive_errors",
            "Polls of an enabled feed in a row that left an error, up to now.",
            labels=["feed"],
        )
        for feed in feed_states():
            failing.add_metric([feed.name], int(feed.failing))
            success.add_metric([feed.name], _timestamp(feed.last_success))
            new.add_metric([feed.name], feed.last_new)
            polls.add_metric([feed.name], feed.polls)
            errors.add_metric([feed.name], feed.failed_polls)
            in_a_row.add_metric([feed.name], feed.failures_in_a_row)
        yield from (failing, success, new, polls, errors, in_a_row)
        yield _gauge("paperboy_papers_stored", "Papers stored.", Paper.objects.count())
        sizes = table_bytes()
        if sizes:
            yield _labelled("paperboy_table_bytes", "PostgreSQL: a table's size with its indexes.", "table", sizes)


def render_metrics() -> bytes:
    """The Prometheus text format of every metric, read now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PaperboyCollector())
    return generate_latest(registry)


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    if not staff_or_bearer(request, settings.METRICS_TOKEN):
        raise Http404
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE)
