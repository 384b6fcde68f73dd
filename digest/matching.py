"""Which papers of a batch each subscriber wants, how much, and why.

A subscriber's preferences compile into a `Matcher`, a plain hashable value, so subscribers with the
same preferences share one evaluation. A batch of papers is indexed once (`BatchIndex`): an
inverted index from word keys to papers, phrases checked only on papers holding all their words,
authors found by family name, and TF-IDF rows for meaning-matching. Every lookup a matcher makes
(a term, an author, a topic, a category set) is cached on the index, so work is shared between all
subscribers of a run. Scores are combined per paper as independent evidence:

    relevance = 1 - (1 - r1) * (1 - r2) * ...

over the signals below; an excluded keyword vetoes the paper, a category filter removes papers
outside it, and the ranking (digest.ranking) turns relevance into the final score.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import numpy as np
from django.conf import settings
from django.utils import timezone

from digest.authors import AuthorIndex, AuthorName, parse_author
from digest.keywords import KeywordQuery, Term, occurs, parse_keywords, text_keys
from digest.ranking import RankingWeights, trend_multipliers
from digest.similarity import PaperSimilarity, paper_text

# Relevance each signal gives on its own.
KEYWORD_IN_TITLE = 0.7
KEYWORD_IN_ABSTRACT = 0.5
AUTHOR = 0.9
CATEGORY_ONLY = 0.3  # a subscriber who chose nothing but categories
CATEGORY_BOOST = 0.25  # extra evidence for a paper that matched and is in a chosen category
# Cosine similarity to relevance: SIMILARITY_FULL or more counts as SIMILARITY_MAX.
SIMILARITY_FULL = 0.35
SIMILARITY_MAX = 0.8
TOPIC_SCALE = 0.9  # a topic is chosen from a list, a little less personal than one's own words
# A topic's keyword list is long and broad: one word in an abstract is weak evidence, two are not.
TOPIC_KEYWORD_FACTOR = 0.4

BOOST = "boost"
FILTER = "filter"


@dataclass(frozen=True)
class PaperDoc:
    id: int
    title: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    upvotes: int = 0
    published: datetime | None = None
    sources: int = 1


@dataclass(frozen=True)
class TopicPrefs:
    name: str
    description: str
    keywords: KeywordQuery


@dataclass(frozen=True)
class Matcher:
    keywords: KeywordQuery = KeywordQuery()
    interests: str = ""
    topics: tuple[TopicPrefs, ...] = ()
    authors: tuple[AuthorName, ...] = ()
    categories: frozenset[str] = frozenset()
    category_mode: str = BOOST

    @property
    def has_signals(self) -> bool:
        return bool(self.keywords.include or self.interests or self.topics or self.authors)


@dataclass(frozen=True)
class Match:
    paper_id: int
    relevance: float
    score: float
    reason: str


@lru_cache(maxsize=4096)
def topic_prefs(name: str, description: str, keywords: str) -> TopicPrefs:
    return TopicPrefs(name=name, description=" ".join(description.split()), keywords=parse_keywords(keywords))


def build_matcher(
    keywords: str = "",
    interests: str = "",
    topics: Iterable[tuple[str, str, str]] = (),
    authors: Iterable[str] = (),
    categories: Iterable[str] = (),
    category_mode: str = BOOST,
) -> Matcher:
    """Preferences as plain values (topics as (name, description, keywords)) -> a Matcher."""
    parsed_authors = {parsed.family + "|" + ".".join(parsed.given): parsed for parsed in map(parse_author, authors) if parsed}
    return Matcher(
        keywords=parse_keywords(keywords),
        interests=" ".join(interests.split()),
        topics=tuple(sorted({topic_prefs(*topic) for topic in topics}, key=lambda topic: topic.name)),
        authors=tuple(parsed_authors[key] for key in sorted(parsed_authors)),
        categories=frozenset(category.strip() for category in categories if category.strip()),
        category_mode=FILTER if category_mode == FILTER else BOOST,
    )


def compile_matcher(subscriber) -> Matcher:
    """A Subscriber (topics prefetched) -> its Matcher."""
    return build_matcher(
        keywords=subscriber.keywords,
        interests=subscriber.interests,
        topics=[(topic.name, topic.description, topic.keywords) for topic in subscriber.topics.all()],
        authors=subscriber.authors or (),
        categories=subscriber.categories or (),
        category_mode=subscriber.category_mode,
    )


def paper_doc(paper, sources: int = 1) -> PaperDoc:
    return PaperDoc(
        id=paper.id,
        title=paper.title,
        abstract=paper.abstract,
        authors=tuple(paper.authors or ()),
        categories=tuple(paper.categories or ()),
        upvotes=paper.upvotes,
        published=paper.published or paper.first_seen,
        sources=max(sources, 1),
    )


def _log_miss(relevance: float | np.ndarray):
    return np.log1p(-np.minimum(relevance, 0.999))


@dataclass
class _TermHits:
    positions: np.ndarray
    weights: np.ndarray
    log_miss: np.ndarray
    relevance: dict[int, float] = field(default_factory=dict)


class BatchIndex:
    """A batch of papers indexed once for every subscriber of a run."""

    def __init__(
        self,
        papers: Sequence[PaperDoc],
        background: Sequence[str] = (),
        now: datetime | None = None,
        weights: RankingWeights | None = None,
        similarity_threshold: float | None = None,
    ):
        self.papers = list(papers)
        self.size = len(self.papers)
        self.weights = weights or RankingWeights.from_settings()
        self.similarity_threshold = (
            settings.MATCH_SIMILARITY_THRESHOLD if similarity_threshold is None else similarity_threshold
        )
        self._title_keys = [text_keys(paper.title) for paper in self.papers]
        self._abstract_keys = [text_keys(paper.abstract) for paper in self.papers]
        postings: dict[str, set[int]] = {}
        title_words: list[set[str]] = []
        for position in range(self.size):
            in_title: set[str] = set()
            for keys, into in ((self._title_keys[position], in_title), (self._abstract_keys[position], None)):
                for stemmed, spelled in keys:
                    for key in (stemmed, spelled) if spelled else (stemmed,):
                        postings.setdefault(key, set()).add(position)
                        if into is not None:
                            into.add(key)
            title_words.append(in_title)
        self._postings = {key: np.array(sorted(found), dtype=np.int32) for key, found in postings.items()}
        self._title_words = title_words
        self.authors = AuthorIndex(paper.authors for paper in self.papers)
        self.similarity = PaperSimilarity([paper_text(p.title, p.abstract) for p in self.papers], background)
        now = now or timezone.now()
        self.trend = trend_multipliers(
            [p.upvotes for p in self.papers], [p.published for p in self.papers], [p.sources for p in self.papers],
            now, self.weights,
        )
        self._terms: dict[tuple[str, ...], _TermHits] = {}
        self._authors: dict[AuthorName, dict[int, str]] = {}
        self._topics: dict[TopicPrefs, np.ndarray] = {}
        self._categories: dict[frozenset[str], np.ndarray] = {}

    def term_hits(self, term: Term) -> _TermHits:
        cached = self._terms.get(term.keys)
        if cached is not None:
            return cached
        candidates = self._postings.get(term.keys[0], np.zeros(0, np.int32))
        for key in term.keys[1:]:
            candidates = np.intersect1d(candidates, self._postings.get(key, np.zeros(0, np.int32)), assume_unique=True)
        relevance: dict[int, float] = {}
        for position in candidates.tolist():
            if term.is_phrase:
                if occurs(term, self._title_keys[position]):
                    relevance[position] = KEYWORD_IN_TITLE
                elif occurs(term, self._abstract_keys[position]):
                    relevance[position] = KEYWORD_IN_ABSTRACT
            else:
                relevance[position] = KEYWORD_IN_TITLE if term.keys[0] in self._title_words[position] else KEYWORD_IN_ABSTRACT
        weights = np.fromiter(relevance.values(), dtype=np.float32, count=len(relevance))
        hits = _TermHits(
            positions=np.fromiter(relevance.keys(), dtype=np.int32, count=len(relevance)),
            weights=weights,
            log_miss=_log_miss(weights),
            relevance=relevance,
        )
        self._terms[term.keys] = hits
        return hits

    def author_hits(self, author: AuthorName) -> dict[int, str]:
        cached = self._authors.get(author)
        if cached is None:
            cached = self._authors[author] = self.authors.papers_by(author)
        return cached

    def query_log_miss(self, query: KeywordQuery, factor: float = 1.0) -> np.ndarray:
        row = np.zeros(self.size, dtype=np.float32)
        for term in query.include:
            hits = self.term_hits(term)
            row[hits.positions] += hits.log_miss if factor == 1.0 else _log_miss(hits.weights * factor)
        return row

    def excluded(self, query: KeywordQuery) -> list[np.ndarray]:
        return [self.term_hits(term).positions for term in query.exclude]

    def similarity_relevance(self, similarities: np.ndarray) -> np.ndarray:
        relevance = np.minimum(SIMILARITY_MAX, similarities * (SIMILARITY_MAX / SIMILARITY_FULL))
        return np.where(similarities >= self.similarity_threshold, relevance, 0.0).astype(np.float32)

    def topic_relevance(self, topic: TopicPrefs) -> np.ndarray:
        cached = self._topics.get(topic)
        if cached is None:
            log_miss = self.query_log_miss(topic.keywords, TOPIC_KEYWORD_FACTOR)
            if topic.description:
                log_miss += _log_miss(self.similarity_relevance(self.similarity.scores([topic.description])[0]))
            cached = TOPIC_SCALE * -np.expm1(log_miss)
            for positions in self.excluded(topic.keywords):
                cached[positions] = 0.0
            self._topics[topic] = cached
        return cached

    def in_categories(self, categories: frozenset[str]) -> np.ndarray:
        cached = self._categories.get(categories)
        if cached is None:
            prefixes = tuple(category + "." for category in categories)
            cached = np.array(
                [any(c in categories or c.startswith(prefixes) for c in paper.categories) for paper in self.papers],
                dtype=bool,
            )
            self._categories[categories] = cached
        return cached


def _relevance_rows(matchers: Sequence[Matcher], index: BatchIndex) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """A matchers x papers relevance array, the interest similarities, and which row each text is."""
    log_miss = np.zeros((len(matchers), index.size), dtype=np.float32)
    texts = sorted({matcher.interests for matcher in matchers if matcher.interests})
    text_row = {text: row for row, text in enumerate(texts)}
    interest_relevance = index.similarity_relevance(index.similarity.scores(texts)) if texts else np.zeros((0, index.size))
    with_interest = [row for row, matcher in enumerate(matchers) if matcher.interests]
    if with_interest:
        rows = [text_row[matchers[row].interests] for row in with_interest]
        log_miss[with_interest] += _log_miss(interest_relevance[rows])
    for row, matcher in enumerate(matchers):
        into = log_miss[row]
        for term in matcher.keywords.include:
            hits = index.term_hits(term)
            into[hits.positions] += hits.log_miss
        for author in matcher.authors:
            found = index.author_hits(author)
            if found:
                into[np.fromiter(found, dtype=np.int32, count=len(found))] += math.log1p(-AUTHOR)
        for topic in matcher.topics:
            into += _log_miss(index.topic_relevance(topic))
    relevance = -np.expm1(log_miss)
    for row, matcher in enumerate(matchers):
        into = relevance[row]
        if matcher.categories:
            chosen = index.in_categories(matcher.categories)
            if not matcher.has_signals:
                into[chosen] = CATEGORY_ONLY
            elif matcher.category_mode == BOOST:
                boosted = chosen & (into > 0)
                into[boosted] = 1 - (1 - into[boosted]) * (1 - CATEGORY_BOOST)
            if matcher.category_mode == FILTER:
                into[~chosen] = 0.0
        for positions in index.excluded(matcher.keywords):
            into[positions] = 0.0
    return relevance, interest_relevance, text_row


def _reason(matcher: Matcher, position: int, index: BatchIndex, interest: float, in_category: bool) -> str:
    evidence: list[tuple[float, str]] = []
    for author in matcher.authors:
        written = index.author_hits(author).get(position)
        if written:
            evidence.append((AUTHOR, f"by {written}"))
    for term in matcher.keywords.include:
        found = index.term_hits(term).relevance.get(position)
        if found:
            evidence.append((found, f"matches your keyword '{term.text}'"))
    for topic in matcher.topics:
        found = float(index.topic_relevance(topic)[position])
        if found > 0:
            evidence.append((found, f"in your topic {topic.name}"))
    if interest > 0:
        evidence.append((interest, "similar to your interests"))
    if in_category:
        evidence.append((CATEGORY_ONLY, "in your categories"))
    evidence.sort(key=lambda item: -item[0])
    seen: list[str] = []
    for _, text in evidence:
        if text not in seen:
            seen.append(text)
    reason = "; ".join(seen[:2])
    return reason[:1].upper() + reason[1:297] + ("..." if len(reason) > 297 else "")


def match_many(matchers: Sequence[Matcher], index: BatchIndex, keep: int | None = None) -> list[list[Match]]:
    """For each matcher, its matched papers best first (at most `keep`), with score and reason."""
    keep = settings.MATCH_KEEP_PER_SUBSCRIBER if keep is None else keep
    if not matchers or not index.size:
        return [[] for _ in matchers]
    relevance, interest_relevance, text_row = _relevance_rows(matchers, index)
    scores = relevance * index.trend
    scores[relevance < index.weights.min_relevance] = 0.0
    results: list[list[Match]] = []
    for row, matcher in enumerate(matchers):
        row_scores = scores[row]
        positions = np.flatnonzero(row_scores)
        if len(positions) > keep:
            positions = positions[np.argpartition(-row_scores[positions], keep - 1)[:keep]]
        positions = positions[np.argsort(-row_scores[positions], kind="stable")]
        interest = interest_relevance[text_row[matcher.interests]] if matcher.interests else None
        chosen = index.in_categories(matcher.categories) if matcher.categories else None
        results.append(
            [
                Match(
                    paper_id=index.papers[position].id,
                    relevance=round(float(relevance[row, position]), 4),
                    score=round(float(row_scores[position]), 4),
                    reason=_reason(
                        matcher, position, index,
                        float(interest[position]) if interest is not None else 0.0,
                        bool(chosen[position]) if chosen is not None else False,
                    ),
                )
                for position in positions.tolist()
            ]
        )
    return results


def match_subscribers(matchers: Mapping[int, Matcher], index: BatchIndex, keep: int | None = None) -> dict[int, list[Match]]:
    """Subscriber id -> matches; subscribers with identical preferences are evaluated once."""
    unique = list(dict.fromkeys(matchers.values()))
    found = dict(zip(unique, match_many(unique, index, keep)))
    return {subscriber_id: found[matcher] for subscriber_id, matcher in matchers.items()}
