"""The digest email: its context (what goes in it) apart from the message (how it is sent).

`build_digest_context` returns plain values that the email templates, the "view in browser" page,
previews, the admin and tests all share. `build_digest_message` turns it into a ready-to-send
`multipart/alternative` message through the one email builder, `subscribers.emails.build_message`.
"""

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.mail import EmailMultiAlternatives
from django.urls import reverse
from django.utils import timezone

from digest.keywords import parse_keywords
from digest.models import Candidate, Delivery, Paper
from subscribers.emails import absolute, build_message
from subscribers.models import Subscriber
from subscribers.tokens import make_token

EMAIL_NAME = "digest"
AUTHORS_SHOWN = 3
EXCERPT_CHARS = 320
SUBJECT_TOPICS = 2
SUBJECT_MAX_CHARS = 90

# Phrases the matcher puts in quotes in a reason: "matches your keyword 'neural field'".
_QUOTED = re.compile(r"[\"'‘“]([^\"'’”]{2,80})[\"'’”]")


@dataclass(frozen=True)
class DigestItem:
    """One paper as the email shows it."""

    paper_id: int
    title: str
    url: str
    authors: str
    categories: list[str]
    upvotes: int
    excerpt: str
    pdf_url: str
    code_url: str
    reason: str
    more_url: str
    less_url: str


def author_names(authors: Iterable) -> list[str]:
    """Names from a paper's authors, stored as plain strings or as {"name": ...} objects."""
    names = []
    for author in authors or []:
        name = author.get("name", "") if isinstance(author, dict) else str(author)
        name = " ".join(name.split())
        if name:
            names.append(name)
    return names


def short_authors(authors: Iterable, shown: int = AUTHORS_SHOWN) -> str:
    """'A, B, C et al.' when there are more than `shown` + 1 authors, else every name."""
    names = author_names(authors)
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


def abstract_url(paper: Paper) -> str:
    if paper.url:
        return paper.url
    if paper.arxiv_id:
        return f"https://arxiv.org/abs/{paper.arxiv_id}"
    return ""


def pdf_url(paper: Paper) -> str:
    if paper.pdf_url:
        return paper.pdf_url
    if paper.arxiv_id:
        return f"https://arxiv.org/pdf/{paper.arxiv_id}"
    return ""


def feedback_url(subscriber: Subscriber, paper_id: int, direction: str) -> str:
    token = make_token(subscriber, "feedback", {"p": paper_id, "d": direction})
    return absolute(reverse("digest:feedback", args=[token]))


def view_url(subscriber: Subscriber, delivery: Delivery) -> str:
    token = make_token(subscriber, "digest", {"d": delivery.pk})
    return absolute(reverse("digest:view", args=[token]))


def digest_item(subscriber: Subscriber, candidate: Candidate) -> DigestItem:
    paper = candidate.paper
    return DigestItem(
        paper_id=paper.pk,
        title=" ".join(paper.title.split()),
        url=abstract_url(paper),
        authors=short_authors(paper.authors),
        categories=list(paper.categories or ([paper.primary_category] if paper.primary_category else [])),
        upvotes=paper.upvotes,
        excerpt=excerpt(paper.abstract),
        pdf_url=pdf_url(paper),
        code_url=paper.code_url,
        reason=candidate.reason,
        more_url=feedback_url(subscriber, paper.pk, "more"),
        less_url=feedback_url(subscriber, paper.pk, "less"),
    )


def _as_phrase(name: str) -> str:
    """'Implicit neural representations' reads as 'implicit neural representations' mid-sentence."""
    name = " ".join(name.split())
    if name[:1].isupper() and not any(c.isupper() for c in name[1:2]):
        return name[:1].lower() + name[1:]
    return name


def positive_keywords(keywords: str) -> list[str]:
    """The wanted terms of a keyword string such as `"neural field", NeRF, -medical`."""
    return [term.text for term in parse_keywords(keywords).include]


def subject_topics(subscriber: Subscriber, candidates: Sequence[Candidate], limit: int = SUBJECT_TOPICS) -> list[str]:
    """What the papers are about, from the subscriber's own words, most frequent first.

    Each paper counts once for each of the subscriber's topics or keywords that its reason names
    (or, for keywords, that its title contains); a quoted phrase in a reason counts as a keyword.
    """
    labels = [t.name for t in subscriber.topics.all()] + positive_keywords(subscriber.keywords)
    counts: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    for position, candidate in enumerate(candidates):
        reason = candidate.reason.casefold()
        title = candidate.paper.title.casefold()
        found = {label for label in labels if label.casefold() in reason or label.casefold() in title}
        found |= {q.strip() for q in _QUOTED.findall(candidate.reason)}
        found_folded = set()
        for label in sorted(found, key=len, reverse=True):
            key = label.casefold()
            # "neural field" and "neural fields" are one subject.
            if any(key in other or other in key for other in found_folded):
                continue
            found_folded.add(key)
            counts[label] += 1
            first_seen.setdefault(label, position)
    ranked = sorted(counts, key=lambda label: (-counts[label], first_seen[label]))
    return [_as_phrase(label) for label in ranked[:limit]]


def digest_subject(subscriber: Subscriber, candidates: Sequence[Candidate]) -> str:
    """e.g. '5 new papers on implicit neural representations and interpretability'."""
    count = len(candidates)
    noun = "paper" if count == 1 else "papers"
    topics = subject_topics(subscriber, candidates)
    while topics:
        subject = f"{count} new {noun} on {' and '.join(topics)}"
        if len(subject) <= SUBJECT_MAX_CHARS:
            return subject
        topics = topics[:-1]
    return f"{count} new {noun} picked for you"


def _local_date(subscriber: Subscriber, moment: datetime):
    try:
        zone = ZoneInfo(subscriber.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return moment.astimezone(zone).date()


def build_digest_context(
    subscriber: Subscriber,
    candidates: Sequence[Candidate],
    more_count: int,
    delivery: Delivery | None = None,
) -> dict:
    """Everything a digest shows, as plain values (no personal manage/unsubscribe links)."""
    candidates = list(candidates)
    items = [digest_item(subscriber, candidate) for candidate in candidates]
    moment = delivery.scheduled_for if delivery is not None and delivery.scheduled_for else timezone.now()
    web_url = view_url(subscriber, delivery) if delivery is not None and delivery.pk else ""
    return {
        "subject": digest_subject(subscriber, candidates),
        "topics": subject_topics(subscriber, candidates),
        "items": items,
        "more_count": more_count,
        "more_url": f"{web_url}#more" if web_url else absolute(reverse("digest:paper_list")),
        "view_url": web_url,
        "date": _local_date(subscriber, moment),
        "preheader": "; ".join(item.title for item in items[:3]),
    }


def build_digest_message(
    subscriber: Subscriber,
    candidates: Sequence[Candidate],
    more_count: int,
    *,
    delivery: Delivery | None = None,
    message_id: str | None = None,
    connection=None,
) -> EmailMultiAlternatives:
    context = build_digest_context(subscriber, candidates, more_count, delivery)
    return build_message(EMAIL_NAME, subscriber, context, message_id=message_id, connection=connection)
