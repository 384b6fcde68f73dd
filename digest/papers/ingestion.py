"""Papers in: fetch a source, parse it, store its papers, and record how the run went on its Feed.

One feed's failure never stops the others, and a feed is stored in one transaction.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from config.logging import log_event
from digest.models import Feed
from digest.papers.cleaning import clean_line, cut_text
from digest.papers.feed_parsing import parse_document
from digest.papers.fetching import FetchError, fetch
from digest.papers.paper_store import StoreCounts, store_papers

logger = logging.getLogger(__name__)

# arXiv's own hosts: only a document from one of them may set arXiv papers' text and version.
ARXIV_HOSTS = frozenset({"arxiv.org", "www.arxiv.org", "export.arxiv.org", "rss.arxiv.org"})
ARXIV_KINDS = frozenset({Feed.Kind.ARXIV_RSS, Feed.Kind.ARXIV_API})
# A feed's last_error is shown in the admin and the dashboard; a problem can quote the feed.
MAX_LAST_ERROR_CHARS = 2_000


@dataclass
class IngestReport:
    source: str
    counts: StoreCounts = field(default_factory=StoreCounts)
    problems: list[str] = field(default_factory=list)
    failed: bool = False
    not_modified: bool = False
    trimmed: int = 0
    # Entries past FEED_MAX_ENTRIES, not stored (counted in counts.skipped too).
    skipped_over_cap: int = 0

    @property
    def error(self) -> str:
        return "; ".join(self.problems)

    def summary(self) -> str:
        c = self.counts
        state = " (not modified)" if self.not_modified else " FAILED" if self.failed else ""
        over_cap = f" over_cap={self.skipped_over_cap}" if self.skipped_over_cap else ""
        return (
            f"{self.source}{state}: new={c.new} updated={c.updated} unchanged={c.unchanged} "
            f"skipped={c.skipped}{over_cap} trimmed={self.trimmed} errors={len(self.problems)}"
        )


def ingest_document(
    body: bytes, source: str, feed: Feed | None = None, content_type: str = "", *, for_liked: bool = False
) -> IngestReport:
    """Parse and store one fetched document (`for_liked`: fetched for readers' liked papers).

    Only its first FEED_MAX_ENTRIES entries are stored: each new paper costs a worker its vectors.
    """
    report = IngestReport(source=source)
    declared_kind = feed.kind if feed else Feed.Kind.AUTO
    limit = settings.FEED_MAX_ENTRIES
    parsed = parse_document(body, kind=declared_kind, content_type=content_type, max_entries=limit)
    report.problems.extend(parsed.problems)
    report.skipped_over_cap = parsed.over_cap
    if parsed.over_cap:
        log_event(
            logger,
            "ingest.over_cap",
            level=logging.WARNING,
            url=source,
            entries=limit + parsed.over_cap,
            cap=limit,
            skipped=parsed.over_cap,
        )
    if parsed.error:
        report.problems.append(parsed.error)
        report.failed = True
        return report
    if feed is not None and not feed.name and parsed.title:
        Feed.objects.filter(pk=feed.pk, name="").update(name=cut_text(parsed.title, 200))
    from_arxiv = speaks_for_arxiv(source, parsed.kind, declared_kind)
    report.counts = store_papers(parsed.papers, feed, from_arxiv=from_arxiv, for_liked=for_liked)
    report.counts.skipped += parsed.skipped
    report.trimmed = parsed.trimmed
    return report


def speaks_for_arxiv(source: str, kind: str, declared_kind: str) -> bool:
    """Whether a document may set arXiv papers' text and version: arXiv's own feeds only.

    A document cannot vouch for itself (any feed can look like arXiv's or link arXiv ids), so the
    kind read from it must agree with where it came from: an http(s) address on one of arXiv's
    hosts, or a local file that an operator declared an arXiv capture by giving its Feed an arXiv
    kind (only staff create Feeds, and a file on the server is one an operator put there).
    """
    if kind not in ARXIV_KINDS:
        return False
    try:
        parts = urlsplit(source)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if parts.scheme in ("http", "https"):
        return host in ARXIV_HOSTS
    # Local, as fetching reads it: file://, a plain path, or a Windows drive letter.
    is_local = parts.scheme == "file" or len(parts.scheme) <= 1
    return is_local and declared_kind in ARXIV_KINDS


def ingest_source(source: str) -> IngestReport:
    """A URL or a local file; a Feed with that address gets its validators and counts recorded."""
    feed = Feed.objects.filter(url=source).first()
    if feed is not None:
        return ingest_feed(feed)
    try:
        fetched = fetch(source)
    except FetchError as exc:
        return IngestReport(source=source, problems=[str(exc)], failed=True)
    return ingest_document(fetched.body, source, content_type=fetched.content_type)


def ingest_feed(feed: Feed) -> IngestReport:
    started = timezone.now()
    try:
        fetched = fetch(feed.url, etag=feed.etag, last_modified=feed.last_modified)
    except FetchError as exc:
        report = IngestReport(source=feed.url, problems=[str(exc)], failed=True)
    else:
        if fetched.not_modified:
            report = IngestReport(source=feed.url, not_modified=True)
        else:
            try:
                report = ingest_document(fetched.body, feed.url, feed, fetched.content_type)
            except Exception as exc:  # a bug or a lost database must not stop the other feeds
                logger.exception("Ingesting %s failed", feed.url)
                report = IngestReport(source=feed.url, problems=[f"ingest failed: {exc}"], failed=True)
            if not report.failed:
                Feed.objects.filter(pk=feed.pk).update(etag=fetched.etag, last_modified=fetched.last_modified)
    _record_run(feed, report, started)
    return report


def _record_run(feed: Feed, report: IngestReport, started: datetime) -> None:
    c = report.counts
    error = cut_text(clean_line(report.error), MAX_LAST_ERROR_CHARS)
    values: dict[str, object] = {
        "last_polled_at": started,
        "last_error": error,
        "last_new": c.new,
        "last_updated": c.updated,
        "last_unchanged": c.unchanged,
        "last_skipped": c.skipped,
        "polls": F("polls") + 1,
    }
    # An error counts whether it lost the whole poll or part of it (a document cut off): either
    # way the feed's last_error holds it, as paperboy_feed_failing shows.
    if error:
        values.update(failed_polls=F("failed_polls") + 1, failures_in_a_row=F("failures_in_a_row") + 1)
    else:
        values["failures_in_a_row"] = 0
    if not report.failed:
        values["last_success_at"] = timezone.now()
    Feed.objects.filter(pk=feed.pk).update(**values)
    log_event(
        logger,
        "ingest.feed",
        level=logging.WARNING if report.problems else logging.INFO,
        feed_id=feed.pk,
        url=feed.url,
        new=c.new,
        updated=c.updated,
        unchanged=c.unchanged,
        skipped=c.skipped,
        over_cap=report.skipped_over_cap,
        trimmed=report.trimmed,
        not_modified=report.not_modified,
        failed=report.failed,
        errors=len(report.problems),
        ms=round((timezone.now() - started).total_seconds() * 1000),
        error=error[:300],
    )


def ingest_all(feeds: Iterable[Feed] | None = None) -> list[IngestReport]:
    """Every enabled feed, one after another; their errors are recorded, never raised."""
    if feeds is None:
        feeds = Feed.objects.filter(enabled=True).order_by("url")
    return [ingest_feed(feed) for feed in feeds]


def sync_feeds_from_settings() -> int:
    """Create a Feed row for each address in settings.FEEDS; returns how many were new."""
    created = 0
    for url in settings.FEEDS:
        _, was_created = Feed.objects.get_or_create(url=url)
        created += was_created
    return created
