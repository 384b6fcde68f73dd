"""The digest email: its context (what goes in it) apart from the message (how it is sent).

`build_digest_context` returns plain values that the email templates, the "view in browser" page,
previews, the admin and tests all share. `build_digest_message` turns it into a ready-to-send
`multipart/alternative` message through the one email builder, `subscribers.emails.build_message`.
"""

import re
import textwrap
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from digest.models import Candidate, Delivery, Paper
from mail.mime import message_bytes
from mail.rendering import absolute, inlined_html, token_url
from subscribers.emails import build_message
from subscribers.keywords import make_term, occurs, parse_keywords, text_keys
from subscribers.models import Subscriber
from subscribers.scheduling import subscriber_zone
from subscribers.tokens import make_token

EMAIL_NAME = "digest"
AUTHORS_SHOWN = 3
EXCERPT_CHARS = 320
SUBJECT_TOPICS = 2
SUBJECT_MAX_CHARS = 90
CARD_CACHE_SIZE = 5000
SKELETON_CACHE_SIZE = 500
INDENT = "   "

# Phrases the matcher puts in quotes in a reason: "matches your keyword 'neural field'".
_QUOTED = re.compile(r"[\"'‘“]([^\"'’”]{2,80})[\"'’”]")


@dataclass(frozen=True)
class PaperCard:
    """What the digest shows of a paper, the same for every subscriber, rendered once per paper."""

    paper_id: int
    title: str
    url: str
    authors: str
    categories: list[str]
    upvotes: int
    excerpt: str
    pdf_url: str
    code_url: str
    html: str = ""
    text: str = ""


@dataclass(frozen=True)
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


@dataclass(frozen=True, slots=True)
class PaperRow:
    """What a digest reads of a paper (`paper_card`, `subject_topics`), as plain values.

    Sending loads a chunk's few hundred papers this way: half the cost of model instances.
    """

    id: int
    title: str
    abstract: str
    authors: list
    categories: list
    primary_category: str
    upvotes: int
    url: str
    pdf_url: str
    code_url: str
    arxiv_id: str | None

    @property
    def pk(self) -> int:
        return self.id


PAPER_FIELDS = tuple(field.name for field in fields(PaperRow))


@dataclass(frozen=True, slots=True)
class Pick:
    """A candidate as a sent digest shows it: what the digest reads of a Candidate, as plain values."""

    id: int
    paper_id: int
    paper: PaperRow
    score: float
    reason: str


Shown = Candidate | Pick  # what a digest is built from: candidates, or picks loaded for sending


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


def abstract_url(paper: Paper | PaperRow) -> str:
    if paper.url:
        return paper.url
    if paper.arxiv_id:
        return f"https://arxiv.org/abs/{paper.arxiv_id}"
    return ""


def pdf_url(paper: Paper | PaperRow) -> str:
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


def _card_key(paper: Paper | PaperRow) -> tuple:
    # Every field a card shows: a cached card can never outlive a change to its paper.
    return (
        paper.pk,
        paper.title,
        paper.abstract,
        repr(paper.authors),
        tuple(paper.categories or ()),
        paper.primary_category,
        paper.upvotes,
        paper.url,
        paper.pdf_url,
        paper.code_url,
        paper.arxiv_id,
    )


_cards: OrderedDict[tuple, PaperCard] = OrderedDict()


def clear_card_cache() -> None:
    _cards.clear()
    _inlined_cards.clear()
    _skeletons.clear()
    _card_slottable.cache_clear()


def paper_card(paper: Paper | PaperRow) -> PaperCard:
    """The paper's card with its HTML and text rendered (`emails/digest_paper.*`), cached per process.

    A daily digest run shows the same few thousand papers to every subscriber, so rendering each
    card once instead of once per subscriber removes most of the template work.
    """
    key = _card_key(paper)
    card = _cards.get(key)
    if card is not None:
        return card
    card = PaperCard(
        paper_id=paper.pk,
        title=" ".join(paper.title.split()),
        url=abstract_url(paper),
        authors=short_authors(paper.authors),
        categories=list(paper.categories or ([paper.primary_category] if paper.primary_category else [])),
        upvotes=paper.upvotes,
        excerpt=excerpt(paper.abstract),
        pdf_url=pdf_url(paper),
        code_url=paper.code_url,
    )
    card = replace(
        card,
        # S308: the output of an autoescaping template, kept so that it is not escaped twice.
        html=mark_safe(render_to_string("emails/digest_paper.html", {"paper": card})),  # noqa: S308
        text=render_to_string(
            "emails/digest_paper.txt",
            {
                "paper": card,
                "excerpt_lines": textwrap.fill(card.excerpt, 75, initial_indent=INDENT, subsequent_indent=INDENT),
            },
        ).strip("\n"),
    )
    _cards[key] = card
    if len(_cards) > CARD_CACHE_SIZE:
        _cards.popitem(last=False)
    return card


def digest_item(candidate: Shown, feedback: Callable[[int, str], str]) -> DigestItem:
    paper_id = candidate.paper_id
    return DigestItem(
        card=paper_card(candidate.paper),
        reason=candidate.reason,
        more_url=feedback(paper_id, "more"),
        less_url=feedback(paper_id, "less"),
    )


def _as_phrase(name: str) -> str:
    """'Implicit neural representations' reads as 'implicit neural representations' mid-sentence."""
    name = " ".join(name.split())
    if name[:1].isupper() and not any(c.isupper() for c in name[1:2]):
        return name[:1].lower() + name[1:]
    return name


@lru_cache(maxsize=CARD_CACHE_SIZE)
def _title_keys(title: str) -> list:
    return text_keys(title)  # a digest run reads the same few thousand titles over and over


def subject_topics(subscriber: Subscriber, candidates: Sequence[Shown], limit: int = SUBJECT_TOPICS) -> list[str]:
    """What the papers are about, from the subscriber's own words, most frequent first.

    Each paper counts once for each of the subscriber's topics or keywords that its reason names
    or its title contains (matched as the matcher does: stems, whole words, acronyms); a quoted
    phrase in a reason counts as a keyword.
    """
    labels = [(topic.name, make_term(topic.name)) for topic in subscriber.topics.all()]
    labels += [(term.text, term) for term in parse_keywords(subscriber.keywords).include]
    folded_labels = [(label, label.casefold(), term) for label, term in labels]
    counts: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    for position, candidate in enumerate(candidates):
        reason = candidate.reason.casefold()
        title = _title_keys(candidate.paper.title)
        found = {label for label, folded, term in folded_labels if folded in reason or (term and occurs(term, title))}
        found |= {quoted.strip() for quoted in _QUOTED.findall(candidate.reason)}
        seen: set[str] = set()
        for label in sorted(found, key=len, reverse=True):
            key = label.casefold()
            # "neural field" and "neural fields" are one subject.
            if any(key in other or other in key for other in seen):
                continue
            seen.add(key)
            counts[label] += 1
            first_seen.setdefault(label, position)
    ranked = sorted(counts, key=lambda label: (-counts[label], first_seen[label]))
    return [_as_phrase(label) for label in ranked[:limit]]


def digest_subject(subscriber: Subscriber, candidates: Sequence[Shown], topics: list[str] | None = None) -> str:
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


def delivery_papers(delivery: Delivery) -> tuple[list[Candidate], list[Candidate]]:
    """The papers a digest showed and the ones it counted as "N more", best first.

    Sending attaches every waiting match to the delivery and shows its best `paper_count`.
    """
    ranked = list(delivery.candidates.select_related("paper").order_by("-score", "id"))
    shown = delivery.paper_count or max(len(ranked) - delivery.more_count, 0)
    return ranked[:shown], ranked[shown:]


def build_digest_context(
    subscriber: Subscriber,
    candidates: Sequence[Shown],
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
    return {
        "subject": digest_subject(subscriber, candidates, topics),
        "topics": topics,
        "items": items,
        "more_count": more_count,
        "more_url": f"{web_url}#more" if web_url else absolute(reverse("digest:paper_list")),
        "view_url": web_url,
        "date": _local_date(subscriber, moment),
        "preheader": "; ".join(item.title for item in items[:3]),
    }


# The digest's parts, rendered (and the HTML CSS-inlined) once per shape instead of once per message.
#
# Inlining re-parses the whole document, and most of it is the same in every digest: the layout
# and the paper cards. So the template is rendered and inlined once per shape (how many papers,
# which links are present, the date, the "more" count) with numbered slots in place of each
# string, and each card is inlined once; a message is then the slots filled with its values,
# escaped as the inliner's HTML serialiser escapes them. `inlined_html` stays the reference:
# anything a slot could not reproduce exactly (control characters, slot-like text) goes that way.
_SLOT = re.compile(r"pbslot(\d+)x")
_CARD_START, _CARD_END = "pbcardstartx", "pbcardendx"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # what the inliner's serialiser would not write back as is
# As the inliner's serialiser escapes text and attribute values; "&" first, so that the entities
# written for the others are not escaped again.
_TEXT_ESCAPES = (("&", "&amp;"), ("\xa0", "&nbsp;"), ("<", "&lt;"), (">", "&gt;"))
_ATTR_ESCAPES = (("&", "&amp;"), ("\xa0", "&nbsp;"), ('"', "&quot;"))


def _escaped(value: str, escapes: tuple[tuple[str, str], ...]) -> str:
    # `in` and `replace` scan in C: several times faster than one str.translate for the links,
    # which have nothing to escape.
    for char, entity in escapes:
        if char in value:
            value = value.replace(char, entity)
    return value


ITEM_SLOTS = ("html", "text", "reason", "more_url", "less_url")
MESSAGE_SLOTS = ("subject", "preheader", "view_url", "more_url", "manage_url", "unsubscribe_url")
_VALUES_KEY = "_slot_values"  # templates cannot read a name starting with an underscore

_inlined_cards: OrderedDict[str, str] = OrderedDict()
_skeletons: dict[tuple, tuple[list[str], list[tuple[int, object]]]] = {}


def _slot_values(context: dict) -> list[str]:
    values = [context[name] for name in MESSAGE_SLOTS] + [context["subscriber"].email]
    for item in context["items"]:
        values += [getattr(item, name) for name in ITEM_SLOTS]
    return values


def _slotted_context(context: dict, values: list[str], items: list | None = None) -> dict:
    """The context with slot names (or "" where the value is empty) in place of the values."""
    slots = [f"pbslot{n}x" if value else "" for n, value in enumerate(values)]
    first_item = len(MESSAGE_SLOTS) + 1
    if items is None:
        items = []
        for start in range(first_item, len(slots), len(ITEM_SLOTS)):
            item = dict(zip(ITEM_SLOTS, slots[start : start + len(ITEM_SLOTS)], strict=True))
            # S308: a slot name, no markup; marked safe so that it is filled in as card HTML is.
            item["html"] = mark_safe(item["html"])  # noqa: S308
            items.append(SimpleNamespace(**item))
    return {
        **context,
        **dict(zip(MESSAGE_SLOTS, slots, strict=False)),
        "subscriber": SimpleNamespace(email=slots[len(MESSAGE_SLOTS)]),
        "items": items,
    }


# Slot kinds besides the escapes: the text part's values, and inlined cards.
_RAW, _CARD = object(), object()


def _skeleton(context: dict, values: list[str], html: bool) -> tuple[list[str], list[tuple[int, object]]]:
    """The digest of this shape split around its slots, each slot with how it is filled: as is
    (text), an inlined card, or escaped as attribute or text."""
    slotted = _slotted_context(context, values)
    rendered = inlined_html(EMAIL_NAME, slotted) if html else render_to_string(f"emails/{EMAIL_NAME}.txt", slotted)
    cards = range(len(MESSAGE_SLOTS) + 1, len(values), len(ITEM_SLOTS))
    pieces = _SLOT.split(rendered)
    literals, slots, before = pieces[::2], [], ""
    for literal, number in zip(pieces[::2], pieces[1::2], strict=False):
        before += literal
        if not html:
            kind = _RAW
        elif int(number) in cards:
            kind = _CARD
        else:
            kind = _ATTR_ESCAPES if before.rfind("<") > before.rfind(">") else _TEXT_ESCAPES
        slots.append((int(number), kind))
    return literals, slots


def _inlined_card(context: dict, values: list[str], card_html: str) -> str:
    """A card's HTML as the inliner writes it inside a digest (its rules only match within the card)."""
    found = _inlined_cards.get(card_html)
    if found is None:
        # S308: a card's HTML is already the output of an autoescaping template (`paper_card`).
        marked = mark_safe(f"{_CARD_START}{card_html}{_CARD_END}")  # noqa: S308
        item = SimpleNamespace(html=marked, text="t", reason="r", more_url="m", less_url="l")
        html = inlined_html(EMAIL_NAME, _slotted_context(context, values[: len(MESSAGE_SLOTS) + 1], [item]))
        found = html.split(_CARD_START, 1)[1].split(_CARD_END, 1)[0]
        _inlined_cards[card_html] = found
        if len(_inlined_cards) > CARD_CACHE_SIZE:
            _inlined_cards.popitem(last=False)
    return found


def _slottable_values(context: dict) -> tuple[list[str], tuple[bool, ...]] | None:
    """The slot values and which are present, or None when slots cannot reproduce them; worked
    out once per message (the text and HTML parts share the context)."""
    if _VALUES_KEY not in context:
        values = _slot_values(context)
        first_card = len(MESSAGE_SLOTS) + 1
        cards = values[first_card :: len(ITEM_SLOTS)]
        others = values[:first_card]
        for position in range(1, len(ITEM_SLOTS)):
            others += values[first_card + position :: len(ITEM_SLOTS)]
        # Newlines are slottable, so joining on them cannot make a match that no single value has.
        joined = "\n".join(others)
        slottable = (
            not _CONTROL.search(joined)
            and "pbslot" not in joined
            and "pbcard" not in joined
            and all(isinstance(card, SafeString) and _card_slottable(card) for card in cards)
            and not any(issubclass(kind, SafeString) for kind in set(map(type, others)))
        )
        context[_VALUES_KEY] = (values, tuple(map(bool, values))) if slottable else None
    return context[_VALUES_KEY]


@lru_cache(maxsize=CARD_CACHE_SIZE)
def _card_slottable(card: str) -> bool:
    # A day's digests show the same cards over and over: each is looked at once.
    return not _CONTROL.search(card) and "pbslot" not in card and "pbcard" not in card


def _filled(context: dict, html: bool) -> str | None:
    """The digest part filled in from its cached skeleton, or None when slots cannot reproduce it."""
    slottable = _slottable_values(context)
    if slottable is None:
        return None
    values, present = slottable
    shape = (html, present, context["more_count"], context["date"], context["SITE_NAME"], context["SITE_URL"])
    skeleton = _skeletons.get(shape)
    if skeleton is None:
        if len(_skeletons) >= SKELETON_CACHE_SIZE:
            _skeletons.clear()
        skeleton = _skeletons[shape] = _skeleton(context, values, html)
    literals, slots = skeleton
    out = [literals[0]]
    for (number, kind), literal in zip(slots, literals[1:], strict=True):
        value = values[number]
        if kind is _RAW:
            out.append(value)
        elif kind is _CARD:
            out.append(_inlined_card(context, values, value))
        elif isinstance(kind, tuple):  # the escapes of its slot
            out.append(_escaped(value, kind))
        out.append(literal)
    return "".join(out)


def digest_html(context: dict) -> str:
    """Exactly `inlined_html("digest", context)`, without inlining the whole document each time."""
    filled = _filled(context, html=True)
    return inlined_html(EMAIL_NAME, context) if filled is None else filled


def digest_text(context: dict) -> str:
    """Exactly the rendered `emails/digest.txt`, without rendering the whole template each time."""
    filled = _filled(context, html=False)
    return render_to_string(f"emails/{EMAIL_NAME}.txt", context) if filled is None else filled


def build_digest_message(
    subscriber: Subscriber,
    candidates: Sequence[Shown],
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
        render_text=digest_text,
        render_html=digest_html,
    )


class DigestTooLarge(Exception):
    """A digest over DIGEST_MAX_BYTES even without its papers."""


def _card_bytes(candidate: Shown) -> int:
    card = paper_card(candidate.paper)
    return len(card.html) + len(card.text) + 2 * len(candidate.reason)


def build_digest_within(
    subscriber: Subscriber,
    candidates: Sequence[Shown],
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
