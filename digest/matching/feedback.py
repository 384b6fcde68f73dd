""" "More like this" / "less like this": one click in a digest teaches the subscriber's own model.

Every click is recorded (MarkedPaper) and retrains the subscriber's linear model over the papers'
sentence vectors (digest/matching/reader_model.py), which learns from the whole paper. Besides:

- less like this: the paper's most widespread title word that the subscriber did not ask for
  becomes a "fewer of these" term (`~word`) in their keyword syntax: papers holding it are lowered,
  never vetoed, and a paper holding one of the subscriber's own keywords is left alone
  (digest.matching.engine). "Widespread" is measured against the titles of the papers we hold: a
  word no other paper uses would never match again, so it would change nothing.
- more like this writes nothing into the keywords any more: the title phrase it used to add
  ("retrieval", "language", "question answering") matched far more than the reader meant, and cost
  a quarter of the precision on the labelled sets (bench/clicks.py, docs/decisions.md).

Everything a click did is shown on the manage page and undone there (`undo_mark`): its row, the
keyword it wrote, and what the model learned from it.
"""

import re
from dataclasses import dataclass, field

from django.db import transaction

from digest.matching.reader_model import retrain
from digest.models import MarkedPaper, Paper
from subscribers.keywords import STOPWORDS, make_term, parse_keywords, positive_keywords
from subscribers.models import Subscriber, lock_subscriber
from subscribers.services import undo_learned_keyword

MORE = "more"
LESS = "less"
DIRECTIONS = (MORE, LESS)
# A word in more than this share of titles ("learning", "models") would veto too much.
TOO_COMMON_SHARE = 0.2
MIN_PAPERS_FOR_SHARE = 20

# Words too vague to say what a paper is about, on top of the matcher's stopwords.
VAGUE_WORDS = STOPWORDS | frozenset(
    "approach beyond large learning method methods model models novel one paper study two".split()
)
_WORD = re.compile(r"[a-z][a-z0-9+\-]*[a-z0-9+]|[a-z]")


@dataclass(frozen=True)
class FeedbackChange:
    direction: str
    keyword: str = ""
    already: list[str] = field(default_factory=list)
    marked: bool = False  # a new mark (or a changed direction) the reader's model now learns from

    @property
    def changed(self) -> bool:
        return bool(self.keyword or self.marked)


def title_words(title: str) -> list[str]:
    """Content words of a title, in order; a one-word name before a colon ("DDMI: ...") is left out."""
    head, colon, rest = title.partition(":")
    if colon and len(head.split()) == 1:
        title = rest
    words = _WORD.findall(title.casefold())
    return [w for w in words if len(w) >= 3 and w not in VAGUE_WORDS and not w.isdigit()]


def _titles_containing(term: str) -> int:
    return Paper.objects.filter(title__icontains=term).count()


def _most_widespread(terms: list[str], at_least: int = 2, at_most: int | None = None) -> str:
    best, best_count = "", 0
    for term in dict.fromkeys(terms):
        count = _titles_containing(term)
        if count >= at_least and (at_most is None or count <= at_most) and count > best_count:
            best, best_count = term, count
    return best


def _items(keywords: str) -> list[str]:
    """The terms of a keyword string, each as written (`"a phrase"`, `word`, `-word`)."""
    return [t.strip() for t in re.findall(r'[-~]?"[^"]*"|[^\s,"]+', keywords or "")]


def add_keyword(keywords: str, term: str) -> str:
    """`keywords` with `term` (a quoted phrase, a word, a -word or a ~word) appended, unless it is already there.

    The result always uses commas: without them the syntax splits at spaces, so a keyword string
    written with spaces is rewritten item by item first, keeping its meaning.
    """
    query = parse_keywords(keywords)
    wanted = make_term(term.lstrip("-~").strip('"'))
    if wanted is None:
        return keywords
    # Also "there" when a term that parse_keywords lets win over it is (-word over ~word and word,
    # ~word over word): appended, it would be dropped, and appended again at every click.
    holding = {"-": query.exclude, "~": query.fewer + query.exclude}.get(
        term[:1], query.include + query.fewer + query.exclude
    )
    if any(existing.keys == wanted.keys for existing in holding):
        return keywords
    # An unclosed quote runs to the end (parse_keywords): closed first, so that rewriting the string
    # neither splits that phrase into words nor swallows the new term into it. Same meaning.
    closed = keywords + '"' if keywords.count('"') % 2 else keywords
    current = closed.strip().rstrip(",") if "," in re.sub(r'"[^"]*"', "", closed) else ", ".join(_items(closed))
    return f"{current}, {term}" if current else term


def less_like_this_term(subscriber: Subscriber, paper: Paper) -> str:
    wanted = " ".join(positive_keywords(subscriber.keywords) + [t.name for t in subscriber.topics.all()]).casefold()
    words = [w for w in title_words(paper.title) if w not in wanted]
    total = Paper.objects.count()
    ceiling = int(total * TOO_COMMON_SHARE) if total >= MIN_PAPERS_FOR_SHARE else None
    return _most_widespread(words, at_least=1, at_most=ceiling) or (words[0] if words else "")


@transaction.atomic
def apply_feedback(subscriber: Subscriber, paper: Paper, direction: str) -> FeedbackChange:
    """Record the click, retrain the subscriber's model, write a "less" click's term, and say what changed."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown feedback direction {direction!r}")
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    already = []
    keyword = ""
    if direction == LESS:
        term = less_like_this_term(subscriber, paper)
        if term:
            fewer = f"~{term}"
            updated = add_keyword(subscriber.keywords, fewer)
            if updated != subscriber.keywords:
                subscriber.keywords, keyword = updated, fewer
                subscriber.learned_keywords = [*subscriber.learned_keywords, keyword]
                subscriber.save(update_fields=["keywords", "learned_keywords"])
            else:
                already.append(fewer)
    marked = _mark(subscriber, paper, direction, keyword)
    return FeedbackChange(direction=direction, keyword=keyword, already=already, marked=marked)


def _mark(subscriber: Subscriber, paper: Paper, direction: str, keyword: str) -> bool:
    """Record the click and retrain the subscriber's model; False when the paper was already marked
    so. A click the other way replaces the first, and takes out the keyword the first wrote."""
    marked = MarkedPaper.objects.filter(subscriber=subscriber, paper=paper).first()
    if marked is None:
        MarkedPaper.objects.create(subscriber=subscriber, paper=paper, direction=direction, keyword=keyword)
    elif marked.direction != direction:
        if marked.keyword:
            undo_learned_keyword(subscriber, marked.keyword)
        marked.direction, marked.keyword = direction, keyword
        marked.save(update_fields=["direction", "keyword"])
    elif keyword:  # the reader had deleted the term by hand, and clicked again
        marked.keyword = keyword
        marked.save(update_fields=["keyword"])
    else:
        return False
    retrain(subscriber)
    return True


def undo_mark(subscriber: Subscriber, marked_id: int) -> bool:
    """Undo one click of the subscriber's own: its row, the keyword it wrote (if the reader has not
    removed it already) and what the model learned from it. False, and nothing changed, for any
    other id (another subscriber's, or one already undone)."""
    with transaction.atomic():
        # The reader's row first, as a click takes it: an undo retraining beside a click of the same
        # reader would otherwise store a model that misses that click until the next retraining.
        lock_subscriber(subscriber.pk)
        marked = MarkedPaper.objects.select_for_update().filter(pk=marked_id, subscriber=subscriber).first()
        if marked is None:
            return False
        marked.delete()
        if marked.keyword:
            undo_learned_keyword(subscriber, marked.keyword)
        retrain(subscriber)
    return True
