"""A subscriber's "papers I liked" list: adding (ids or titles, read by subscribers/liked_input.py),
removing, listing, and fetching the papers we do not hold from the arXiv API.

A liked paper we hold is linked at once. Any other waits (state `waiting`) and
`fetch_waiting_papers` asks the arXiv API for it through the feed pipeline (fetching.py, then
ingestion.py, which parses and stores what arXiv sends like any feed). After a fetch:

- the paper is stored: the row links to it (`known`), and the subscriber is re-matched; papers
  stored by this fetch are marked `fetched_for_liked`, so that no match run offers them to anyone
  as new (digest/matching/runs.py);
- arXiv answered properly without it: asked again once later, then `not_found`, kept and shown so
  the subscriber sees what happened;
- the request failed (a network or HTTP error, an arXiv error message, a malformed answer): nothing
  changes but the attempt count and the time of the next attempt, which backs off.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from urllib.parse import urlencode

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from config.celery import queue_on_commit_or_warn
from config.logging import log_event
from digest.models import LikedPaper, Paper
from digest.papers.cleaning import cut_text
from digest.papers.fetching import FetchError, fetch
from digest.papers.ingestion import ingest_document
from subscribers import rematch
from subscribers.liked_input import LikedInput, LikedInputError, normalize_title
from subscribers.models import Subscriber, lock_subscriber

log = logging.getLogger(__name__)

State = LikedPaper.State
# Ids per API request (arXiv serves id_list of any length; a short URL is kinder to proxies).
IDS_PER_REQUEST = 50
# Waiting rows handled per task run; the rest wait for the next run.
ROWS_PER_RUN = 500
# Minutes before asking again after the n-th failed attempt (the last repeats).
RETRY_MINUTES = (10, 60, 360, 1440)
# Proper answers without the paper before it is `not_found`: a paper announced minutes ago can be
# missing from the API for a while.
ANSWERS_BEFORE_NOT_FOUND = 2
# A claimed row is not handed to another worker for this long.
CLAIM_MINUTES = 15
TITLE_SEARCH_RESULTS = 5


@dataclass(frozen=True)
class AddOutcome:
    known: int = 0
    waiting: int = 0
    already: int = 0

    @property
    def added(self) -> int:
        return self.known + self.waiting


@dataclass
class FetchOutcome:
    requests: int = 0
    found: int = 0
    not_found: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)


def liked_list(subscriber: Subscriber) -> list[LikedPaper]:
    return list(LikedPaper.objects.filter(subscriber=subscriber).select_related("paper"))


def add_liked_papers(subscriber: Subscriber, liked: LikedInput, now: datetime | None = None) -> AddOutcome:
    """Add what the subscriber gave; all of it or, over LIKED_MAX_PAPERS, none (LikedInputError)."""
    now = now or timezone.now()
    with transaction.atomic():
        # One change at a time per subscriber: the limit holds against two tabs saving at once.
        lock_subscriber(subscriber.pk)
        existing = list(LikedPaper.objects.filter(subscriber=subscriber).select_related("paper"))
        by_id = {paper.arxiv_id: paper for paper in Paper.objects.filter(arxiv_id__in=liked.arxiv_ids)}
        by_title = _stored_by_title(liked.titles)
        have_papers = {row.paper_id for row in existing if row.paper_id}
        have_ids = {row.arxiv_id for row in existing if row.arxiv_id}
        have_titles = {normalize_title(row.title) for row in existing if row.title}
        rows: list[LikedPaper] = []
        already = 0
        asked = [(arxiv_id, "", by_id.get(arxiv_id)) for arxiv_id in liked.arxiv_ids]
        asked += [("", title, by_title.get(normalize_title(title))) for title in liked.titles]
        for arxiv_id, title, paper in asked:
            if paper is not None:
                duplicate = paper.pk in have_papers or bool(paper.arxiv_id and paper.arxiv_id in have_ids)
                have_papers.add(paper.pk)
                new = LikedPaper(subscriber=subscriber, paper=paper, arxiv_id=paper.arxiv_id or "", state=State.KNOWN)
            else:
                duplicate = arxiv_id in have_ids if arxiv_id else normalize_title(title) in have_titles
                new = LikedPaper(subscriber=subscriber, arxiv_id=arxiv_id, title=title, next_fetch_at=now)
            if duplicate:
                already += 1
                continue
            if new.arxiv_id:
                have_ids.add(new.arxiv_id)
            if title:
                have_titles.add(normalize_title(title))
            rows.append(new)
        if len(existing) + len(rows) > settings.LIKED_MAX_PAPERS:
            raise LikedInputError(
                f"Your list can hold {settings.LIKED_MAX_PAPERS} papers; it has {len(existing)}, and this adds "
                f"{len(rows)}. Remove some first. Nothing was saved."
            )
        LikedPaper.objects.bulk_create(rows)
        outcome = AddOutcome(
            known=sum(row.state == State.KNOWN for row in rows),
            waiting=sum(row.state == State.WAITING for row in rows),
            already=already,
        )
        if outcome.known and subscriber.status == Subscriber.Status.ACTIVE:
            transaction.on_commit(partial(rematch.queue_rematch, subscriber.pk))
        if outcome.waiting:
            # The rows wait with next_fetch_at set: without a queued fetch the periodic run fetches them.
            queue_on_commit_or_warn("digest.fetch_liked_papers", otherwise="the next periodic run fetches them")
    return outcome


def remove_liked_paper(subscriber: Subscriber, liked_id: int) -> bool:
    """Remove one of the subscriber's own rows; any other id (another subscriber's) removes nothing."""
    deleted, _ = LikedPaper.objects.filter(pk=liked_id, subscriber=subscriber).delete()
    return deleted == 1


def _stored_by_title(titles: Sequence[str]) -> dict[str, Paper]:
    if not titles:
        return {}
    query = Q()
    for title in titles:
        query |= Q(title__iexact=" ".join(title.split()))
    found: dict[str, Paper] = {}
    for paper in Paper.objects.filter(query).order_by("id"):
        found.setdefault(normalize_title(paper.title), paper)
    return found


def arxiv_ids_url(arxiv_ids: Sequence[str]) -> str:
    return f"{settings.ARXIV_API_URL}?{urlencode({'id_list': ','.join(arxiv_ids), 'max_results': len(arxiv_ids)})}"


def arxiv_title_url(title: str) -> str:
    # A quote in the title would end the phrase and let the rest be read as arXiv query syntax.
    phrase = " ".join(title.replace('"', " ").split())
    query = {"search_query": f'ti:"{phrase}"', "max_results": TITLE_SEARCH_RESULTS}
    return f"{settings.ARXIV_API_URL}?{urlencode(query)}"


def _claim(now: datetime) -> list[LikedPaper]:
    """1. Take up to ROWS_PER_RUN waiting rows that are due, locked (others skip them), of
       subscribers who confirmed: anyone can sign up an address with 100 titles, each one arXiv
       request, so an unconfirmed signup's list waits (the periodic run fetches it once confirmed).
    2. Move their next_fetch_at CLAIM_MINUTES ahead in the same transaction, so a second worker,
       or a run that dies here, leaves them alone until then; the outcome of the fetch sets it
       properly afterwards."""
    with transaction.atomic():
        due = list(
            LikedPaper.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state=State.WAITING, next_fetch_at__lte=now)
            .exclude(subscriber__status=Subscriber.Status.PENDING)
            .order_by("next_fetch_at", "id")[:ROWS_PER_RUN]
        )
        LikedPaper.objects.filter(pk__in=[row.pk for row in due]).update(
            next_fetch_at=now + timedelta(minutes=CLAIM_MINUTES)
        )
    return due


def fetch_waiting_papers(now: datetime | None = None) -> FetchOutcome:
    """Ask arXiv for the waiting papers that are due; each row ends linked, retried later or not found."""
    now = now or timezone.now()
    rows = _claim(now)
    outcome = FetchOutcome()
    by_id: dict[str, list[LikedPaper]] = defaultdict(list)
    by_title: dict[str, list[LikedPaper]] = defaultdict(list)
    for row in rows:
        if row.arxiv_id:
            by_id[row.arxiv_id].append(row)
        else:
            by_title[normalize_title(row.title)].append(row)
    # A feed may have brought some since they were added: those need no request.
    for paper in Paper.objects.filter(arxiv_id__in=list(by_id)):
        _settle(by_id.pop(paper.arxiv_id or ""), paper, "", now, outcome)
    ids = sorted(by_id)
    for start in range(0, len(ids), IDS_PER_REQUEST):
        batch = ids[start : start + IDS_PER_REQUEST]
        error = _fetch_into_store(arxiv_ids_url(batch), outcome)
        stored = {paper.arxiv_id: paper for paper in Paper.objects.filter(arxiv_id__in=batch)}
        for arxiv_id in batch:
            _settle(by_id[arxiv_id], stored.get(arxiv_id), error, now, outcome)
    for key, waiting in by_title.items():
        error = _fetch_into_store(arxiv_title_url(waiting[0].title), outcome)
        _settle(waiting, _stored_by_title([waiting[0].title]).get(key), error, now, outcome)
    if rows:
        log_event(
            log,
            "liked.fetch",
            rows=len(rows),
            requests=outcome.requests,
            found=outcome.found,
            not_found=outcome.not_found,
            failed=outcome.failed,
        )
    return outcome


def _fetch_into_store(url: str, outcome: FetchOutcome) -> str:
    """Fetch and store what arXiv sends; the error that makes its answer unusable, or ""."""
    outcome.requests += 1
    try:
        fetched = fetch(url)
    except FetchError as exc:
        error = str(exc)
    else:
        report = ingest_document(fetched.body, url, content_type=fetched.content_type, for_liked=True)
        # A document with problems (cut off, malformed) may have lost the very entry asked for.
        error = report.error if report.failed or report.problems else ""
    if error:
        outcome.problems.append(error)
    return error


def _settle(rows: Iterable[LikedPaper], paper: Paper | None, error: str, now: datetime, outcome: FetchOutcome) -> None:
    for row in rows:
        row.fetch_attempts = min(row.fetch_attempts + 1, 32_000)
        if paper is not None:
            _link(row, paper)
            outcome.found += 1
            continue
        if not error and row.fetch_attempts >= ANSWERS_BEFORE_NOT_FOUND:
            row.state, row.next_fetch_at = State.NOT_FOUND, None
            row.last_error = "arXiv has no paper " + (f"with id {row.arxiv_id}" if row.arxiv_id else "with this title")
            outcome.not_found += 1
        else:
            wait = RETRY_MINUTES[min(row.fetch_attempts, len(RETRY_MINUTES)) - 1]
            row.next_fetch_at = now + timedelta(minutes=wait)
            row.last_error = cut_text(error or "not in arXiv's answer yet; asking again later", 300)
            outcome.failed += bool(error)
        LikedPaper.objects.filter(pk=row.pk, state=State.WAITING).update(
            state=row.state,
            next_fetch_at=row.next_fetch_at,
            last_error=row.last_error,
            fetch_attempts=row.fetch_attempts,
        )


def _link(row: LikedPaper, paper: Paper) -> None:
    try:
        with transaction.atomic():
            linked = LikedPaper.objects.filter(pk=row.pk, state=State.WAITING).update(
                paper=paper,
                arxiv_id=paper.arxiv_id or row.arxiv_id,
                state=State.KNOWN,
                next_fetch_at=None,
                last_error="",
                fetch_attempts=row.fetch_attempts,
            )
    except IntegrityError:
        # The subscriber liked this paper twice (by id and by title): one row is enough.
        LikedPaper.objects.filter(pk=row.pk).delete()
        return
    if linked:
        active = Subscriber.objects.filter(pk=row.subscriber_id, status=Subscriber.Status.ACTIVE).exists()
        if active:
            transaction.on_commit(partial(rematch.queue_rematch, row.subscriber_id))
