""" "More like this" / "less like this": one click in a digest adjusts the subscriber's preferences.

The change is small, visible and undoable on the manage page, written in the subscriber's own
keyword syntax (`"a phrase", word, -excluded`) so matching needs nothing new:

- more like this: the paper's most widespread two-word title phrase (or word) becomes a quoted
  keyword, and its primary category joins the subscriber's categories;
- less like this: the paper's most widespread title word that the subscriber did not ask for
  becomes a "fewer of these" term (`~word`): papers holding it are lowered, never vetoed, and a
  paper holding one of the subscriber's own keywords is left alone (digest.matching.engine).

"Widespread" is measured against the titles of the papers we hold: a phrase no other paper uses
would never match again, so it would change nothing.
"""

import re
from dataclasses import dataclass, field
from itertools import pairwise

from django.db import transaction

from digest.models import Paper
from subscribers.keywords import STOPWORDS, make_term, parse_keywords, positive_keywords
from subscribers.models import Subscriber

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
    category: str = ""
    already: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.keyword or self.category)


def title_words(title: str) -> list[str]:
    """Content words of a title, in order; a one-word name before a colon ("DDMI: ...") is left out."""
    head, colon, rest = title.partition(":")
    if colon and len(head.split()) == 1:
        title = rest
    words = _WORD.findall(title.casefold())
    return [w for w in words if len(w) >= 3 and w not in VAGUE_WORDS and not w.isdigit()]


def _title_phrases(words: list[str]) -> list[str]:
    return [f"{a} {b}" for a, b in pairwise(words)]


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


def _quoted(term: str) -> str:
    return f'"{term}"' if " " in term else term


def more_like_this_term(paper: Paper) -> str:
    words = title_words(paper.title)
    return _most_widespread(_title_phrases(words)) or _most_widespread(words) or (words[0] if words else "")


def less_like_this_term(subscriber: Subscriber, paper: Paper) -> str:
    wanted = " ".join(positive_keywords(subscriber.keywords) + [t.name for t in subscriber.topics.all()]).casefold()
    words = [w for w in title_words(paper.title) if w not in wanted]
    total = Paper.objects.count()
    ceiling = int(total * TOO_COMMON_SHARE) if total >= MIN_PAPERS_FOR_SHARE else None
    return _most_widespread(words, at_least=1, at_most=ceiling) or (words[0] if words else "")


@transaction.atomic
def apply_feedback(subscriber: Subscriber, paper: Paper, direction: str) -> FeedbackChange:
    """Adjust the subscriber's keywords (and categories) and say exactly what changed."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown feedback direction {direction!r}")
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    already = []
    keyword = category = ""
    if direction == MORE:
        term = more_like_this_term(paper)
        wanted = _quoted(term) if term else ""
        if wanted:
            updated = add_keyword(subscriber.keywords, wanted)
            if updated != subscriber.keywords:
                subscriber.keywords, keyword = updated, wanted
            else:
                already.append(wanted)
        primary = paper.primary_category or (paper.categories[0] if paper.categories else "")
        if primary:
            if primary in subscriber.categories:
                already.append(primary)
            else:
                subscriber.categories = [*subscriber.categories, primary]
                category = primary
        # The category goes with the term's undo if a click added it (this one or an earlier one).
        if keyword and primary and (category or primary in subscriber.learned_categories.values()):
            subscriber.learned_categories = {**subscriber.learned_categories, keyword: primary}
    else:
        term = less_like_this_term(subscriber, paper)
        if term:
            fewer = f"~{term}"
            updated = add_keyword(subscriber.keywords, fewer)
            if updated != subscriber.keywords:
                subscriber.keywords, keyword = updated, fewer
            else:
                already.append(fewer)
    if keyword:
        subscriber.learned_keywords = [*subscriber.learned_keywords, keyword]
    if keyword or category:
        subscriber.save(update_fields=["keywords", "categories", "learned_keywords", "learned_categories"])
    return FeedbackChange(direction=direction, keyword=keyword, category=category, already=already)
