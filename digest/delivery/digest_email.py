"""The digest email: its context (what goes in it) apart from the message (how it is sent).

`build_digest_context` returns plain values that the email templates (Jinja2,
`templates/jinja2/emails/digest*`, rendered by `mail.rendering.render_inlined_email`), the "view in browser" page,
previews, the admin and tests all share. `build_digest_message` turns it into a ready-to-send
`multipart/alternative` message through the one email builder, `subscribers.emails.build_message`.
"""

import re
import textwrap
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.urls import reverse
from django.utils import timezone

from digest.delivery.picks import PaperRow, Pick, load_picks
from digest.models import Delivery
from mail.mime import message_bytes
from mail.rendering import absolute, clear_fragments, render_inlined_email, token_url
from subscribers.emails import build_message
from subscribers.keywords import Term, make_term, occurs, parse_keywords, text_keys
from subscribers.models import Subscriber
from subscribers.scheduling import subscriber_zone
from subscribers.tokens import make_token

EMAIL_NAME = "digest"
AUTHORS_SHOWN = 3
EXCERPT_CHARS = 320
SUBJECT_TOPICS = 2
SUBJECT_MAX_CHARS = 90
CARD_CACHE_SIZE = 5000
SUBJECT_LABELS_CACHE_SIZE = 20_000
# Where digest/delivery/claims.py `load_subscribers` puts a chunk's subscribers' topic names (a tuple each).
PREFETCHED_TOPICS = "digest_topics"
INDENT = "   "
RECENT_DAYS = 2  # arXiv announces a day's papers the next evening, UTC
RECENT_DAYS_WEEKLY = 8

# Phrases the matcher puts in quotes in a reason: "matches your keyword 'neural field'".
_QUOTED = re.compile(r"[\"'‘“]([^\"'’”]{2,80})[\"'’”]")


@dataclass(frozen=True, slots=True)
class PaperCard:
    """What the digest shows of a paper, the same for every subscriber, rendered once per paper."""

    paper_id: int
    title: str
    url: str  # the abstract, or the paper's page on this site: every card links to its paper
    authors: str
    categories: tuple[str, ...]
    upvotes: int
    excerpt: str
    pdf_url: str
    code_url: str
    excerpt_lines: str  # the excerpt wrapped and indented for the text part
    date_label: str  # "17 Mar 2026", the paper's publication date (UTC), or ""
    # date, categories, organisation, "3 comments": only what the paper has, so no empty label
    meta: tuple[str, ...]
    upvotes_label: str  # "42 upvotes", or "" with none

    @property
    def meta_line(self) -> str:
        """The meta and the upvotes as one line of text, with no dangling separator."""
        return " · ".join((*self.meta, self.upvotes_label) if self.upvotes_label else self.meta)


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One paper as one subscriber's digest shows it: its card, why it was picked, feedback links."""

    card: PaperCard
    reason: str
    more_url: str
    less_url: str

    def __getattr__(self, name: str) -> Any:  # whatever the card has
        # Templates and callers read item.title, item.url... straight from the card.
        if name == "card":
            raise AttributeError(name)
        return getattr(self.card, name)


def short_authors(names: Sequence[str], shown: int = AUTHORS_SHOWN) -> str:
    """'A, B, C et al.' when there are more than `shown` + 1 authors, else every name."""
    if len(names) > shown + 1:
        return ", ".join(names[:shown]) + " et al."
    return ", ".join(names)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of an abstract, cut at a word boundary."""
    text = " ".join((text or "").split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:.-")
    return cut + "…"


def abstract_url(paper: PaperRow) -> str:
    """The paper's abstract where it has one, else its page on this site (seed papers have none)."""
    if paper.url:
        return paper.url
    if paper.arxiv_id:
        return f"https://arxiv.org/abs/{paper.arxiv_id}"
    return absolute(reverse("digest:paper", args=[paper.pk]))


def short_date(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def pdf_url(paper: PaperRow) -> str:
    if paper.pdf_url:
        return paper.pdf_url
    if paper.arxiv_id:
        return f"https://arxiv.org/pdf/{paper.arxiv_id}"
    return ""


def feedback_url(subscriber: Subscriber, paper_id: int, direction: str) -> str:
    """A feedback link signed for this one paper and direction (previews, which have no delivery)."""
    return token_url("digest:feedback", make_token(subscriber, "feedback", {"p": paper_id, "d": direction}))


def feedback_links(subscriber: Subscriber, delivery: Delivery | None) -> Callable[[int, str], str]:
    """`(paper id, direction) -> feedback URL` for the papers of one digest.

    A sent digest's links share one signed token that names the delivery, and the view accepts
    only papers of that delivery: the same links as one token per link would allow, for one
    signature per digest instead of two per paper.
    """
    if delivery is None or not delivery.pk:
        return lambda paper_id, direction: feedback_url(subscriber, paper_id, direction)
    token = make_token(subscriber, "feedback", {"digest": delivery.pk})
    base = token_url("digest:feedback_paper", token, 0, "more").removesuffix("0/more/")
    return lambda paper_id, direction: f"{base}{paper_id}/{direction}/"


def view_url(subscriber: Subscriber, delivery: Delivery) -> str:
    return token_url("digest:view", make_token(subscriber, "digest", {"d": delivery.pk}))


def paper_card(paper: PaperRow) -> PaperCard:
    """What the digest shows of the paper, cached per process by the whole row (so never stale).

    A daily digest run shows the same few thousand papers to every subscriber: each card's
    values (authors shortened, abstract cut and wrapped) are worked out once, not once per
    subscriber. SITE_URL is part of the key too: a card may link to the paper's page here.
    """
    return _paper_card(paper, settings.SITE_URL)


@lru_cache(maxsize=CARD_CACHE_SIZE)
def _paper_card(paper: PaperRow, site_url: str) -> PaperCard:
    """`paper_card`, cached; `site_url` is only part of the key (links are made from the setting)."""
    text = excerpt(paper.abstract)
    categories = tuple(name for name in (" ".join(c.split()) for c in paper.categories) if name)
    if not categories and paper.primary_category.strip():
        categories = (" ".join(paper.primary_category.split()),)
    date_label = short_date(paper.published.astimezone(UTC).date()) if paper.published else ""
    plural = "" if paper.upvotes == 1 else "s"
    comments = paper.num_comments or 0
    comments_label = f"{comments} comment{'' if comments == 1 else 's'}" if comments else ""
    organization = " ".join(paper.organization.split())
    return PaperCard(
        paper_id=paper.pk,
        title=" ".join(paper.title.split()),
        url=abstract_url(paper),
        authors=short_authors(paper.authors),
        categories=categories,
        upvotes=paper.upvotes,
        excerpt=text,
        pdf_url=pdf_url(paper),
        code_url=paper.code_url,
        excerpt_lines=textwrap.fill(text, 75, initial_indent=INDENT, subsequent_indent=INDENT),
        date_label=date_label,
        meta=tuple(part for part in (date_label, ", ".join(categories), organization, comments_label) if part),
        upvotes_label=f"{paper.upvotes} upvote{plural}" if paper.upvotes else "",
    )


def clear_card_cache() -> None:
    _paper_card.cache_clear()
    clear_fragments()


def digest_item(candidate: Pick, feedback: Callable[[int, str], str]) -> DigestItem:
    paper_id = candidate.paper_id
    return DigestItem(
        card=paper_card(candidate.paper),
        reason=candidate.reason,
        more_url=feedback(paper_id, "more"),
        less_url=feedback(paper_id, "less"),
    )


def _as_phrase(name: str) -> str:
    """A topic's name mid-sentence: 'Implicit neural representations' reads as 'implicit neural
    representations'; a first word that is not a plain capitalised word ('NeRF', 'Σ-Mem', 'LLM')
    keeps its case."""
    name = " ".join(name.split())
    first = name.split(" ", 1)[0]
    if first.isalpha() and first[:1].isupper() and first[1:].islower():
        return name[:1].lower() + name[1:]
    return name


@dataclass(frozen=True, slots=True)
class _TitleKeys:
    keys: list[tuple[str, ...]]  # per token, as the matcher reads a title (`text_keys`)
    every: frozenset[str]  # all of them: a term with a key not among them cannot occur


@lru_cache(maxsize=CARD_CACHE_SIZE)
def _title_keys(title: str) -> _TitleKeys:
    keys = text_keys(title)  # a digest run reads the same few thousand titles over and over
    return _TitleKeys(keys, frozenset(key for token in keys for key in token))


def _in_title(term: Term | None, title: _TitleKeys) -> bool:
    return term is not None and title.every.issuperset(term.keys) and occurs(term, title.keys)


def topic_names_of(subscriber: Subscriber) -> tuple[str, ...]:
    """The names of the subscriber's topics, in their order; those `load_subscribers` fetched with a
    chunk (`PREFETCHED_TOPICS`) when it did."""
    names = getattr(subscriber, PREFETCHED_TOPICS, None)
    return tuple(topic.name for topic in subscriber.topics.all()) if names is None else names


SubjectLabel = tuple[str, str, Term | None]  # as written, casefolded, its term


@lru_cache(maxsize=SUBJECT_LABELS_CACHE_SIZE)
def _subject_labels(topic_names: tuple[str, ...], keywords: str) -> tuple[tuple[SubjectLabel, ...], frozenset[str]]:
    """The labels a subject line may name, for these topic names and this keyword string, and
    which of them are topic names. Cached by both (an audience shares topics and keywords), so an
    edited keyword string is a new key, never a stale subject."""
    labels = [(name, make_term(name, forms=False)) for name in topic_names]
    labels += [(term.text, term) for term in parse_keywords(keywords, forms=False).include]
    return tuple((label, label.casefold(), term) for label, term in labels), frozenset(topic_names)


def subject_topics(subscriber: Subscriber, candidates: Sequence[Pick], limit: int = SUBJECT_TOPICS) -> list[str]:
    """What the papers are about, from the subscriber's own words, most frequent first.

    Each paper counts once for each of the subscriber's topics or keywords that its reason names
    or its title contains (matched as the matcher does: stems, whole words, acronyms); a quoted
    phrase in a reason counts as a keyword.
    """
    folded_labels, topic_names = _subject_labels(topic_names_of(subscriber), subscriber.keywords)
    counts: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    for position, candidate in enumerate(candidates):
        reason = candidate.reason.casefold()
        title = _title_keys(candidate.paper.title)
        found = {label for label, folded, term in folded_labels if folded in reason or _in_title(term, title)}
        found |= {quoted.strip() for quoted in _QUOTED.findall(candidate.reason)}
        seen: set[str] = set()
        # Longest first; equal lengths alphabetically, not in the set's order, which changes with
        # the process's hash seed: a retry in another worker must build the same subject.
        for label in sorted(found, key=lambda label: (-len(label), label)):
            key = label.casefold()
            # "neural field" and "neural fields" are one subject.
            if any(key in other or other in key for other in seen):
                continue
            seen.add(key)
            counts[label] += 1
            first_seen.setdefault(label, position)
    ranked = sorted(counts, key=lambda label: (-counts[label], first_seen[label]))
    # Our topic names are written as titles; the reader's keywords and the papers' phrases keep their case.
    return [_as_phrase(label) if label in topic_names else label for label in ranked[:limit]]


def digest_subject(subscriber: Subscriber, candidates: Sequence[Pick], topics: list[str] | None = None) -> str:
    """e.g. '5 new papers on implicit neural representations and interpretability'."""
    count = len(candidates)
    noun = "paper" if count == 1 else "papers"
    topics = subject_topics(subscriber, candidates) if topics is None else topics
    while topics:
        subject = f"{count} new {noun} on {' and '.join(topics)}"
        if len(subject) <= SUBJECT_MAX_CHARS:
            return subject
        topics = topics[:-1]
    return f"{count} new {noun} picked for you"


def _local_date(subscriber: Subscriber, moment: datetime) -> date:
    return moment.astimezone(subscriber_zone(subscriber.timezone)).date()


def delivery_papers(delivery: Delivery) -> tuple[list[Pick], list[Pick]]:
    """The papers a digest showed and the ones it counted as "N more", best first.

    Sending gives the delivery every waiting match (its range) and shows its best `paper_count`.
    """
    ranked = load_picks(delivery.candidates.order_by("-score", "id"))
    shown = delivery.paper_count or max(len(ranked) - delivery.more_count, 0)
    return ranked[:shown], ranked[shown:]


def papers_source(candidates: Sequence[Pick], day: date, weekly: bool) -> str:
    """Where the papers come from, as their dates say: "today's trending papers" only when they
    are all from the last two days (the last eight for a weekly digest), else their dates."""
    dates = sorted(pick.paper.published.astimezone(UTC).date() for pick in candidates if pick.paper.published)
    if not dates:
        return "the trending papers"
    recent = day - timedelta(days=RECENT_DAYS_WEEKLY if weekly else RECENT_DAYS)
    if dates[0] >= recent:
        return "this week's trending papers" if weekly else "today's trending papers"
    if dates[0] == dates[-1]:
        return f"the trending papers of {short_date(dates[0])}"
    return f"the trending papers of {short_date(dates[0])} to {short_date(dates[-1])}"


def build_digest_context(
    subscriber: Subscriber,
    candidates: Sequence[Pick],
    more_count: int,
    delivery: Delivery | None = None,
) -> dict:
    """Everything a digest shows, as plain values (no personal manage/unsubscribe links)."""
    candidates = list(candidates)
    feedback = feedback_links(subscriber, delivery)
    items = [digest_item(candidate, feedback) for candidate in candidates]
    moment = delivery.scheduled_for if delivery is not None and delivery.scheduled_for else timezone.now()
    web_url = view_url(subscriber, delivery) if delivery is not None and delivery.pk else ""
    topics = subject_topics(subscriber, candidates)
    day = _local_date(subscriber, moment)
    subject = digest_subject(subscriber, candidates, topics)
    weekly = subscriber.frequency == Subscriber.Frequency.WEEKLY
    return {
        "subject": subject,
        "intro": f"{subject}, picked for you from {papers_source(candidates, day, weekly)}.",
        "heading": f"{settings.SITE_NAME} {'weekly' if weekly else 'daily'} digest",
        "topics": topics,
        "items": items,
        "more_count": more_count,
        "more_url": f"{web_url}#more" if web_url else absolute(reverse("digest:paper_list")),
        "view_url": web_url,
        "date": day,
        "date_label": f"{day:%A} {day.day} {day:%B %Y}",
        "preheader": "; ".join(item.title for item in items[:3]),
    }


def build_digest_message(
    subscriber: Subscriber,
    candidates: Sequence[Pick],
    more_count: int,
    *,
    delivery: Delivery | None = None,
    message_id: str | None = None,
    connection: BaseEmailBackend | None = None,
) -> EmailMultiAlternatives:
    context = build_digest_context(subscriber, candidates, more_count, delivery)
    return build_message(
        EMAIL_NAME,
        subscriber,
        context,
        message_id=message_id,
        connection=connection,
        render=render_inlined_email,
    )


class DigestTooLarge(Exception):
    """A digest over DIGEST_MAX_BYTES even without its papers."""


def _card_bytes(candidate: Pick) -> int:
    card = paper_card(candidate.paper)
    shown = (card.title, card.authors, card.excerpt, card.url, card.pdf_url, card.code_url, candidate.reason)
    return 2 * sum(map(len, shown))  # each is in the text part and the HTML


def build_digest_within(
    subscriber: Subscriber,
    candidates: Sequence[Pick],
    more_count: int,
    max_bytes: int,
    *,
    delivery: Delivery | None = None,
    message_id: str | None = None,
    connection: BaseEmailBackend | None = None,
) -> tuple[EmailMultiAlternatives, bytes]:
    """The digest message and its bytes as sent, at most `max_bytes`.

    A digest over it (a feed sent a paper with a title of megabytes) leaves out the paper with the
    largest card, counted with the "N more" that link to the digest's page, and is built again,
    until it fits: the same papers each time, so a retry sends the same digest. DigestTooLarge
    when even no paper is too many.
    """
    shown = list(candidates)
    while True:
        message = build_digest_message(
            subscriber,
            shown,
            more_count + len(candidates) - len(shown),
            delivery=delivery,
            message_id=message_id,
            connection=connection,
        )
        data = message_bytes(message)
        if len(data) <= max_bytes:
            return message, data
        if not shown:
            raise DigestTooLarge(f"the digest is {len(data)} bytes with no paper, over DIGEST_MAX_BYTES={max_bytes}")
        # One at a time: a paper's share of the bytes is more than its card (its title is also in
        # the preheader), so a guess at how many to leave out could leave out too many.
        largest = max(shown, key=_card_bytes)
        shown = [candidate for candidate in shown if candidate is not largest]
