"""Which papers of a batch each subscriber wants, how much, and why.

A subscriber's preferences compile into a `Matcher`, a plain hashable value, so subscribers with the
same preferences share one evaluation. A batch of papers is indexed once (`BatchIndex`): an
inverted index from words and adjacent word pairs to papers (a phrase is looked up, not searched
for), authors found by family name, and TF-IDF rows for meaning-matching. Every lookup a matcher makes
(a term, an author, a topic, a category set) is cached on the index, so work is shared between all
subscribers of a run. Scores are combined per paper as independent evidence:

    relevance = 1 - (1 - r1) * (1 - r2) * ...

over the signals below; an excluded keyword vetoes the paper, a category filter removes papers
outside it, and the ranking (digest.matching.ranking) turns relevance into the final score.
"""

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from itertools import pairwise
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from django.conf import settings
from django.utils import timezone
from scipy import sparse

from digest.matching import embedding, relevance_model
from digest.matching.authors import AuthorIndex, AuthorName, parse_author
from digest.matching.liked import LikedScores, liked_rows, liked_scores
from digest.matching.ranking import RankingWeights, trend_multipliers
from digest.matching.reader_model import ReaderScores, ReaderWeights, reader_logits, reader_scores
from digest.matching.similarity import PaperSimilarity, paper_text, wanted_text
from subscribers.keywords import (
    ACRONYM_PREFIX,
    KeywordQuery,
    Term,
    definitions,
    inflection_key,
    occurs_keys,
    parse_keywords,
    text_keys,
)

if TYPE_CHECKING:
    from digest.models import Paper
    from subscribers.models import Subscriber

# Relevance each signal gives on its own.
KEYWORD_IN_TITLE = 0.7
KEYWORD_IN_ABSTRACT = 0.5
# A keyword only in the abstract, and there only in a form the rules relate to what the reader typed
# (another inflection, the acronym or its expansion, a joined or split spelling), or a keyword most
# papers hold: below RANKING_MIN_RELEVANCE alone, above it beside a second such keyword.
KEYWORD_RELATED = 0.15
# A keyword held by more than this share of a batch of COMMON_MIN_PAPERS or more counts fully only
# in titles (an inverse document frequency in its simplest form: it says little about one paper).
COMMON_KEYWORD_SHARE = 0.25
COMMON_MIN_PAPERS = 50
AUTHOR = 0.9
CATEGORY_ONLY = 0.3  # a subscriber who chose nothing but categories
CATEGORY_BOOST = 0.25  # extra evidence for a paper that matched and is in a chosen category
# Cosine similarity to relevance: SIMILARITY_FULL or more counts as SIMILARITY_MAX.
SIMILARITY_FULL = 0.35
SIMILARITY_MAX = 0.8
TOPIC_SCALE = 0.9  # a topic is chosen from a list, a little less personal than one's own words
# A topic's keyword list is long and broad: one word in an abstract is weak evidence, two are not.
TOPIC_KEYWORD_FACTOR = 0.4

# "Less like this": a paper holding a `~term` keeps this share of its relevance.
LESS_OF_FACTOR = 0.3
# A one-word keyword is also looked for as two words ("finetuning" -> "fine tuning"), parts this long.
MIN_SPLIT_PART = 3
# An acronym stands for an expansion defined by at least 1 in USUAL_MEANING_SHARE of the batch's
# papers that define it.
USUAL_MEANING_SHARE = 3

INTEREST_REASON = "similar to your interests"
KEYWORD_FEATURES = ("keyword_in_title", "keyword_strong", "keywords_strong")

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
    liked: tuple[str, ...] = ()  # texts of the papers the subscriber liked (digest/matching/liked.py)
    reader: ReaderWeights | None = None  # the subscriber's own model (digest/matching/reader_model.py)

    @property
    def has_signals(self) -> bool:
        return bool(self.keywords.include or self.interests or self.topics or self.authors or self.liked or self.reader)


class Match(NamedTuple):
    paper_id: int
    relevance: float
    score: float
    reason: str


@dataclass(frozen=True, slots=True)
class Matches:
    """One subscriber's matches, best first, held column-wise: a run makes millions of them."""

    paper_ids: list[int]
    relevance: list[float]
    scores: list[float]
    reasons: list[str]

    def __len__(self) -> int:
        return len(self.paper_ids)

    def __iter__(self) -> Iterator[Match]:
        return map(Match, self.paper_ids, self.relevance, self.scores, self.reasons)

    def __getitem__(self, position: int) -> Match:
        return Match(self.paper_ids[position], self.relevance[position], self.scores[position], self.reasons[position])


NO_MATCHES = Matches([], [], [], [])


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
    parsed_authors = {
        parsed.family + "|" + ".".join(parsed.given): parsed for parsed in map(parse_author, authors) if parsed
    }
    return Matcher(
        keywords=parse_keywords(keywords),
        interests=" ".join(interests.split()),
        topics=tuple(sorted({topic_prefs(*topic) for topic in topics}, key=lambda topic: topic.name)),
        authors=tuple(parsed_authors[key] for key in sorted(parsed_authors)),
        categories=frozenset(category.strip() for category in categories if category.strip()),
        category_mode=FILTER if category_mode == FILTER else BOOST,
    )


def compile_matcher(subscriber: "Subscriber") -> Matcher:
    """A Subscriber (topics prefetched) -> its Matcher."""
    return build_matcher(
        keywords=subscriber.keywords,
        interests=subscriber.interests,
        topics=[(topic.name, topic.description, topic.keywords) for topic in subscriber.topics.all()],
        # JSON fields: whatever an admin typed in, only strings are names and categories.
        authors=[name for name in subscriber.authors or () if isinstance(name, str)],
        categories=[category for category in subscriber.categories or () if isinstance(category, str)],
        category_mode=subscriber.category_mode,
    )


def paper_doc(paper: "Paper", sources: int = 1) -> PaperDoc:
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


def _log_miss(relevance: float | np.ndarray) -> np.ndarray:
    return np.log1p(-np.minimum(relevance, 0.999))


@dataclass
class _Hits:
    """Sorted paper positions with the relevance each gets from one signal."""

    positions: np.ndarray
    weights: np.ndarray
    log_miss: np.ndarray

    @classmethod
    def of(cls, found: Mapping[int, float]) -> "_Hits":
        positions = np.array(sorted(found), dtype=np.int32)
        weights = np.array([found[position] for position in positions.tolist()], dtype=np.float32)
        return cls(positions=positions, weights=weights, log_miss=_log_miss(weights))

    def at(self, positions: np.ndarray, size: int) -> np.ndarray:
        """The relevance at the given positions of a batch of `size` papers."""
        # Spread over the batch and read back: cheaper than searching the sorted positions.
        row = np.zeros(size, dtype=np.float32)
        row[self.positions] = self.weights
        return row[positions]


_NO_HITS = _Hits(np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.float32))
# What BatchIndex.term_hits reads of a Term: its keys, joined and typed forms, and its text case aside.
_TermKey = tuple[tuple[str, ...], tuple[tuple[str, ...], ...], tuple[str, ...], str]


class BatchIndex:
    """A batch of papers indexed once for every subscriber of a run."""

    def __init__(
        self,
        papers: Sequence[PaperDoc],
        background: Sequence[str] = (),
        now: datetime | None = None,
        weights: RankingWeights | None = None,
        similarity_threshold: float | None = None,
        vectors: Callable[[Sequence[str]], np.ndarray] = embedding.encode,
    ):
        """`vectors` gives texts' sentence vectors (digest/matching/embedding.py): by default encoded
        in this process; a matching run passes the stored ones (digest/matching/vectors.py)."""
        self.papers = list(papers)
        self.vectors = vectors
        self.size = len(self.papers)
        self.ids = np.array([paper.id for paper in self.papers], dtype=np.int64)
        self.weights = weights or RankingWeights.from_settings()
        self.similarity_threshold = (
            settings.MATCH_SIMILARITY_THRESHOLD if similarity_threshold is None else similarity_threshold
        )
        self._title_keys = [text_keys(paper.title) for paper in self.papers]
        self._abstract_keys = [text_keys(paper.abstract) for paper in self.papers]
        # Words and adjacent word pairs -> papers: a two-word phrase is answered without reading any
        # text, a longer one is read only in the papers holding all its pairs.
        postings: defaultdict[str, list[int]] = defaultdict(list)
        self._title_words: list[set[str]] = []
        for position in range(self.size):
            title, abstract = self._title_keys[position], self._abstract_keys[position]
            in_title = {key for token in title for key in token}
            keys = in_title | {key for token in abstract for key in token}
            for sequence in (title, abstract):
                # Lemma and acronym keys pair with each other; the written forms (last) with each other.
                for first, second in pairwise(sequence):
                    keys.update(f"{a} {b}" for a in first[:-1] for b in second[:-1])
                    keys.add(f"{first[-1]} {second[-1]}")
            for key in keys:
                postings[key].append(position)
            self._title_words.append(in_title)
        self._postings = {key: np.array(found, dtype=np.int32) for key, found in postings.items()}
        # Acronyms the papers define: acronym -> {expansion: papers defining it so}, and the reverse.
        self.glossary: dict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
        self._defined: dict[str, dict[int, tuple[str, ...]]] = defaultdict(dict)
        self._abbreviated: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for position, paper in enumerate(self.papers):
            for acronym_key, expansion in dict(definitions(f"{paper.title}. {paper.abstract}")).items():
                self.glossary[acronym_key][expansion] += 1
                self._defined[acronym_key][position] = expansion
                self._abbreviated[expansion].add(acronym_key)
        self.authors = AuthorIndex(paper.authors for paper in self.papers)
        self.similarity = PaperSimilarity([paper_text(p.title, p.abstract) for p in self.papers], background)
        now = now or timezone.now()
        self.trend = trend_multipliers(
            [p.upvotes for p in self.papers],
            [p.published for p in self.papers],
            [p.sources for p in self.papers],
            now,
            self.weights,
        )
        self._terms: dict[_TermKey, _Hits] = {}
        self._forms: dict[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], dict[int, bool]] = {}
        self._authors: dict[AuthorName, tuple[_Hits, dict[int, str]]] = {}
        self._topics: dict[TopicPrefs, np.ndarray] = {}
        self._categories: dict[frozenset[str], np.ndarray] = {}

    @cached_property
    def paper_vectors(self) -> np.ndarray:
        """The papers' sentence vectors, asked for only when an interest needs them."""
        return self.vectors([embedding.embedding_text(paper.title, paper.abstract) for paper in self.papers])

    def embedding_scores(self, texts: Sequence[str]) -> np.ndarray:
        """A len(texts) x papers array: the cosine of each text's sentence vector with each paper's."""
        if not len(texts):
            return np.empty((0, self.size), dtype=np.float32)
        return self.paper_products(self.vectors(texts))

    def paper_products(self, rows: np.ndarray) -> np.ndarray:
        """A len(rows) x papers array: each row (a sentence vector, a reader model's weights) times
        each paper's sentence vector, one row at a time (as PaperSimilarity._lsa): a row's products
        are the same to the last bit alone or beside any others, which one product of the stacked
        rows would not promise (BLAS may sum a row differently beside other rows)."""
        found = np.empty((len(rows), self.size), dtype=np.float32)
        if not len(rows):
            return found
        papers = self.paper_vectors
        for row, vector in enumerate(rows):
            np.matmul(papers, vector, out=found[row])
        return found

    def interest_meaning(self, texts: Sequence[str], rows: sparse.csr_matrix | None = None) -> dict[str, np.ndarray]:
        """Interests' (wanted texts') features for the relevance models, each texts x papers: the
        similarity's MeaningScores by name and the sentence vectors' cosine ("embedding"). `rows`:
        the texts already transformed, when the caller has them."""
        meaning = self.similarity.meaning_scores_of(
            self.similarity.model.transform(texts) if rows is None else rows
        )._asdict()
        meaning["embedding"] = self.embedding_scores(texts)
        return meaning

    def term_hits(self, term: Term) -> _Hits:
        """Papers holding the term in any of its forms: as typed, joined or split ("fine tuning",
        "finetuning"), or through an acronym a paper of the batch defines ("INR" <-> "implicit
        neural representation"). A paper scores the title weight when a form is in its title, the
        abstract weight when its abstract writes the term as typed or defines the acronym typed,
        and KEYWORD_RELATED when its abstract holds only another form, or when the
        term is common in the batch."""
        # Keyed by all the term's fields read below, not by its keys alone: the weights depend on how
        # it was typed, and whichever subscriber asks first must not decide them for the others.
        key = (term.keys, term.joined, term.surface, term.text.lower())
        cached = self._terms.get(key)
        if cached is not None:
            return cached
        in_title = self._holding(term.keys, (*term.joined, *self._split_forms(term)))
        common = self.size >= COMMON_MIN_PAPERS and len(in_title) > COMMON_KEYWORD_SHARE * self.size
        as_typed = set() if common or not in_title else {*self._phrase_hits(term.surface), *self._defining(term.keys)}
        found = {
            position: KEYWORD_IN_TITLE if titled else KEYWORD_IN_ABSTRACT if position in as_typed else KEYWORD_RELATED
            for position, titled in in_title.items()
        }
        hits = self._terms[key] = _Hits.of(found) if found else _NO_HITS
        return hits

    def _holding(self, keys: tuple[str, ...], spellings: tuple[tuple[str, ...], ...]) -> dict[int, bool]:
        """Paper position -> whether in its title, for the papers holding the keys, one of their
        joined or split spellings, or an acronym or expansion the batch defines for them. Shared by
        the ways of typing a term that have these forms ("sparse autoencoder", "Sparse autoencoders")."""
        cached = self._forms.get((keys, spellings))
        if cached is not None:
            return cached
        in_title: dict[int, bool] = {}
        for forms in dict.fromkeys([keys, *spellings, *self._expansions(keys)]):
            for position, titled in self._phrase_hits(forms).items():
                in_title[position] = in_title.get(position, False) or titled
        for acronym_key, defined_elsewhere in self._acronyms_for(keys):
            for position, titled in self._phrase_hits((acronym_key,)).items():
                if position not in defined_elsewhere:
                    in_title[position] = in_title.get(position, False) or titled
        self._forms[(keys, spellings)] = in_title
        return in_title

    def _defining(self, keys: tuple[str, ...]) -> list[int]:
        """For an acronym, the papers that define it in their own text ("implicit neural
        representations (INRs)"): there the reader's acronym is the paper's own term, whatever
        the plural. A phrase has no such papers: they write the phrase, in some form, anyway."""
        return list(self._defined.get(keys[0], ())) if len(keys) == 1 else []

    def _phrase_hits(self, keys: tuple[str, ...]) -> dict[int, bool]:
        """Paper position -> whether the words are in its title, for papers holding them in order."""
        empty = np.zeros(0, np.int32)
        lookups = keys if len(keys) == 1 else [a + " " + b for a, b in pairwise(keys)]
        candidates = self._postings.get(lookups[0], empty)
        for key in lookups[1:]:
            if not len(candidates):
                break
            candidates = np.intersect1d(candidates, self._postings.get(key, empty), assume_unique=True)
        found: dict[int, bool] = {}
        for position in candidates.tolist():
            if len(keys) == 1:
                found[position] = keys[0] in self._title_words[position]
            elif occurs_keys(keys, self._title_keys[position]):
                found[position] = True
            elif len(keys) == 2 or occurs_keys(keys, self._abstract_keys[position]):
                found[position] = False
        return found

    def _split_forms(self, term: Term) -> list[tuple[str, ...]]:
        """A one-word term as two adjacent words some paper of the batch writes ("finetuning" ->
        "fine tuning"); only splits into parts of three letters or more that occur as a pair."""
        word = term.text.lower()
        if len(term.keys) != 1 or term.keys[0].startswith(ACRONYM_PREFIX) or not word.isalpha():
            return []
        splits = [
            (inflection_key(word[:cut]), inflection_key(word[cut:]))
            for cut in range(MIN_SPLIT_PART, len(word) - MIN_SPLIT_PART + 1)
        ]
        return [pair for pair in splits if pair[0] + " " + pair[1] in self._postings]

    def _expansions(self, keys: tuple[str, ...]) -> list[tuple[str, ...]]:
        """An acronym's expansions as the batch defines it, the usual meanings only ("RL" is
        reinforcement learning, though one paper says representation learning)."""
        if len(keys) != 1 or keys[0] not in self.glossary:
            return []
        meanings = self.glossary[keys[0]]
        total = sum(meanings.values())
        return [expansion for expansion, count in meanings.items() if count * USUAL_MEANING_SHARE >= total]

    def _acronyms_for(self, keys: tuple[str, ...]) -> list[tuple[str, set[int]]]:
        """Acronyms standing for this phrase in the batch, each with the papers that define the
        acronym as something else (where it means something else)."""
        if len(keys) < 2:
            return []
        return [
            (acronym_key, {position for position, expansion in self._defined[acronym_key].items() if expansion != keys})
            for acronym_key in self._abbreviated.get(keys, ())
            if keys in self._expansions((acronym_key,))
        ]

    def author_hits(self, author: AuthorName) -> tuple[_Hits, dict[int, str]]:
        """Papers by the author, and the name as each paper spells it."""
        cached = self._authors.get(author)
        if cached is None:
            written = self.authors.papers_by(author)
            cached = self._authors[author] = (
                _Hits.of(dict.fromkeys(written, AUTHOR)) if written else _NO_HITS,
                written,
            )
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
            cached = (TOPIC_SCALE * -np.expm1(log_miss)).astype(np.float32)
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


class _Evidence(NamedTuple):
    reason: str
    hits: _Hits | None  # sparse signals: keywords, authors
    dense: np.ndarray | None  # dense signals: topics, interests, categories (relevance per paper)
    keyword: bool = False

    def at(self, positions: np.ndarray, size: int) -> np.ndarray:
        if self.hits is not None:
            return self.hits.at(positions, size)
        return self.dense[positions] if self.dense is not None else np.zeros(len(positions), np.float32)


def keyword_text(query: KeywordQuery) -> str:
    """The wanted keywords as one text, compared with papers by meaning like an interest."""
    return " ".join(term.text for term in query.include)


def keyword_hits(query: KeywordQuery, index: BatchIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Papers holding a wanted keyword where the keyword rules count it fully (in the title in any
    form; in the abstract as typed, unless most of the batch holds it: see BatchIndex.term_hits):
    their positions, how many distinct keywords each holds so, and whether one is in its title.
    Other forms found only in an abstract are left to the meaning features: on the fit sets they
    marked mentions more often than topics (docs/decisions.md)."""
    found = [index.term_hits(term) for term in query.include]
    if not found:
        empty = np.zeros(0, np.int64)
        return empty, empty.astype(np.float32), empty.astype(bool)
    every = np.concatenate([hits.positions for hits in found])
    weights = np.concatenate([hits.weights for hits in found])
    strong = weights >= np.float32(KEYWORD_IN_ABSTRACT)
    counts = np.bincount(every[strong], minlength=index.size)
    titled = np.zeros(index.size, dtype=bool)
    titled[every[weights >= np.float32(KEYWORD_IN_TITLE)]] = True
    positions = np.flatnonzero(counts)
    return positions, counts[positions].astype(np.float32), titled[positions]


def keyword_features(query: KeywordQuery, index: BatchIndex) -> dict[str, np.ndarray]:
    """The model's keyword features per paper (see keyword_hits): a keyword in the title (0/1), one
    counted fully anywhere (0/1), how many distinct ones are (at most 3)."""
    positions, counts, in_title = keyword_hits(query, index)
    features = {name: np.zeros(index.size, np.float32) for name in KEYWORD_FEATURES}
    features["keyword_in_title"][positions] = in_title
    features["keyword_strong"][positions] = 1.0
    features["keywords_strong"][positions] = np.minimum(counts, 3.0)
    return features


def _add_keyword_logit(
    logit: np.ndarray, query: KeywordQuery, index: BatchIndex, model: relevance_model.LogisticModel
) -> None:
    """The keyword features' part of the model's logit (see keyword_features), added where found."""
    positions, counts, in_title = keyword_hits(query, index)
    if len(positions):
        logit[positions] += (
            model.weight("keyword_strong")
            + model.weight("keywords_strong") * np.minimum(counts, 3.0)
            + model.weight("keyword_in_title") * in_title
        )


def _evidence(matcher: Matcher, index: BatchIndex, interest: np.ndarray | None) -> list[_Evidence]:
    found: list[_Evidence] = []
    for author in matcher.authors:
        hits, written = index.author_hits(author)
        if written:
            # The fullest spelling in the batch reads best: "Yann LeCun" rather than "Y. LeCun".
            found.append(_Evidence(f"by {max(written.values(), key=len)}", hits, None))
    for term in matcher.keywords.include:
        hits = index.term_hits(term)
        if len(hits.positions):
            found.append(_Evidence(f"matches your keyword '{term.text}'", hits, None, keyword=True))
    for topic in matcher.topics:
        found.append(_Evidence(f"in your topic {topic.name}", None, index.topic_relevance(topic)))
    if interest is not None:
        found.append(_Evidence(INTEREST_REASON, None, interest))
    return found


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _reasons(
    evidence: list[_Evidence],
    positions: np.ndarray,
    size: int,
    in_category: np.ndarray | None,
    interest: Callable[[np.ndarray], list[str]] | None = None,
) -> list[str]:
    """Per paper (by position in a batch of `size`), its strongest piece of evidence and the next
    one, if any. The interest's evidence quotes the words of the interest the paper shares
    (`interest(positions)` gives them)."""
    texts = [item.reason for item in evidence]
    rows = [item.at(positions, size) for item in evidence]
    if in_category is not None:
        texts.append("in your categories")
        rows.append(in_category[positions] * CATEGORY_ONLY)
    if not rows:
        return [""] * len(positions)
    values = np.vstack(rows)
    columns = np.arange(len(positions))
    best = values.argmax(axis=0)
    values[best, columns] = 0.0
    second = np.where(values.max(axis=0) > 0, values.argmax(axis=0), -1)
    codes = (best * (len(texts) + 1) + second + 1).tolist()
    slot = next((number for number, item in enumerate(evidence) if item.reason == INTEREST_REASON), -1)
    quoted = [""] * len(positions)
    if interest is not None and slot >= 0:
        shown = np.flatnonzero((best == slot) | (second == slot))
        if len(shown):
            for position, phrase in zip(shown.tolist(), interest(positions[shown]), strict=True):
                quoted[position] = phrase
    # Few distinct (best, second) pairs per subscriber: each one's text is put together once, and
    # each distinct quote of the interest is set into it once.
    ends: dict[int, tuple[str, str, str]] = {}
    table: dict[tuple[int, str], str] = {}
    reasons = []
    for key in zip(codes, quoted, strict=True):
        text = table.get(key)
        if text is None:
            code, phrase = key
            if code not in ends:
                ends[code] = _reason_ends(texts, code)
            unquoted, before, after = ends[code]
            text = before + phrase + after if phrase else unquoted
            text = table[key] = text if len(text) <= 300 else text[:297] + "..."
        reasons.append(text)
    return reasons


def _reason_ends(texts: list[str], code: int) -> tuple[str, str, str]:
    """The reason of a (best, second) code (see _reasons): as it reads without a quote of the
    interest, and the text before and after the quote when the interest is one of the two."""
    first, other = divmod(code, len(texts) + 1)
    parts = [texts[first], *([texts[other - 1]] if other else [])]
    unquoted = _capitalised("; ".join(parts))
    if INTEREST_REASON not in parts:
        return unquoted, unquoted, ""
    at = parts.index(INTEREST_REASON)
    before = _capitalised("; ".join([*parts[:at], "matches your interest: "]))
    return unquoted, before, "".join(f"; {part}" for part in parts[at + 1 :])


def _apply_exclusions(query: KeywordQuery, index: BatchIndex, relevance: np.ndarray) -> None:
    """`-term` vetoes a paper; `~term` (what "less like this" writes) lowers it, unless the paper
    holds one of the reader's own keywords: feedback never overrides what the reader asked for."""
    for positions in index.excluded(query):
        relevance[positions] = 0.0
    if not query.fewer:
        return
    own = np.zeros(index.size, dtype=bool)
    for term in query.include:
        own[index.term_hits(term).positions] = True
    for term in query.fewer:
        positions = index.term_hits(term).positions
        lowered = positions[~own[positions]]
        relevance[lowered] = _lowered(relevance[lowered])


def _lowered(relevance: np.ndarray) -> np.ndarray:
    return relevance * LESS_OF_FACTOR


def _interest_phrases(
    index: BatchIndex, interests: str, rows: sparse.csr_matrix, row: int
) -> Callable[[np.ndarray], list[str]] | None:
    if not interests:
        return None
    return lambda positions: index.similarity.shared_phrases(
        index.similarity.interest_words(interests, rows, row), positions
    )


def match_many(matchers: Sequence[Matcher], index: BatchIndex, keep: int | None = None) -> list[Matches]:
    """For each matcher, its matched papers best first (at most `keep`), with score and reason."""
    keep = settings.MATCH_KEEP_PER_SUBSCRIBER if keep is None else keep
    if not matchers or not index.size:
        return [NO_MATCHES for _ in matchers]
    # Interests (what they say is wanted), and the keywords of those who also wrote one, compared
    # with every paper at once; each model's dense arithmetic runs over the rows it needs only.
    wanted = {matcher.interests: wanted_text(matcher.interests) for matcher in matchers if matcher.interests}
    interest_texts = sorted(set(wanted.values()))
    keyword_texts = sorted(
        {keyword_text(matcher.keywords) for matcher in matchers if matcher.interests and matcher.keywords.include}
    )
    text_row = {text: row for row, text in enumerate(interest_texts)}
    keyword_row = {text: row for row, text in enumerate(keyword_texts)}
    min_relevance = index.weights.min_relevance
    rows = index.similarity.model.transform(interest_texts)
    meaning = index.interest_meaning(interest_texts, rows)
    description = relevance_model.DESCRIPTION
    description_logit = description.logit(meaning)
    described = relevance_model.relevance_of(description_logit + description.offset(min_relevance), min_relevance)
    # With keywords, a paper the interest alone picks with high precision stays picked (see below).
    confident = relevance_model.relevance_of(
        description_logit + relevance_model.DESCRIPTION_CONFIDENT.offset(min_relevance), min_relevance
    )
    # The "both" model's logit is a sum: the parts from meaning are computed for all texts at once.
    both = relevance_model.BOTH
    as_interest = both.logit(meaning) + np.float32(both.offset(min_relevance))
    as_keywords = both.logit(
        {
            f"keywords_{name}": scores
            for name, scores in index.similarity.meaning_scores(keyword_texts)._asdict().items()
        }
    )
    # The liked papers of those without their own model (which replaces them), read in one product.
    liked_given = liked_rows((matcher.liked for matcher in matchers if matcher.reader is None), index.similarity)
    # The readers' own models, all read in one product (by position in `matchers`).
    modelled = {number: matcher.reader for number, matcher in enumerate(matchers) if matcher.reader is not None}
    model_logits = dict(zip(modelled, reader_logits(list(modelled.values()), index), strict=True))
    results: list[Matches] = []
    for number, matcher in enumerate(matchers):
        row = text_row.get(wanted.get(matcher.interests, ""), -1)
        interest = described[row] if row >= 0 else None
        evidence = _evidence(matcher, index, interest)
        # The reader's own model, when they have one, learned from the liked papers too: it replaces their signal.
        liked: LikedScores | ReaderScores | None
        if matcher.reader is not None:
            liked = reader_scores(matcher.reader, model_logits[number], index, matcher.keywords)
        else:
            liked = liked_scores(matcher.liked, index.similarity, liked_given)
        if liked is not None:
            evidence += [_Evidence(reason, None, dense) for reason, dense in liked.evidence]
        if interest is not None and matcher.keywords.include:
            logit = as_interest[row] + as_keywords[keyword_row[keyword_text(matcher.keywords)]]
            _add_keyword_logit(logit, matcher.keywords, index, both)
            # The joint model weighs the interest less than the description model does (keywords
            # carry part of the evidence), so papers the interest alone is sure of are kept too:
            # on the fit sets this raised recall at the same precision (docs/decisions.md).
            joint = np.maximum(relevance_model.relevance_of(logit, min_relevance), confident[row])
            log_miss = _log_miss(joint)
            # The model holds the keywords and the interest; other evidence adds to it.
            kept = [item for item in evidence if item.reason != INTEREST_REASON and not item.keyword]
        else:
            log_miss = np.zeros(index.size, np.float32)
            kept = evidence
        for item in kept:
            if item.hits is not None:
                log_miss[item.hits.positions] += item.hits.log_miss
            elif item.dense is not None:
                log_miss += _log_miss(item.dense)
        relevance = -np.expm1(log_miss)
        if liked is not None:
            liked.sharpen(relevance)
        chosen = index.in_categories(matcher.categories) if matcher.categories else None
        if chosen is not None:
            if not matcher.has_signals:
                relevance[chosen] = CATEGORY_ONLY
            elif matcher.category_mode == BOOST:
                boosted = chosen & (relevance > 0)
                relevance[boosted] = 1 - (1 - relevance[boosted]) * (1 - CATEGORY_BOOST)
            if matcher.category_mode == FILTER:
                relevance[~chosen] = 0.0
        _apply_exclusions(matcher.keywords, index, relevance)
        positions = np.flatnonzero(relevance >= min_relevance)
        if not len(positions):
            results.append(NO_MATCHES)
            continue
        scores = relevance[positions] * index.trend[positions]
        if len(positions) > keep:
            best = np.argpartition(-scores, keep - 1)[:keep]
            positions, scores = positions[best], scores[best]
        order = np.argsort(-scores, kind="stable")
        positions, scores = positions[order], scores[order]
        results.append(
            Matches(
                paper_ids=index.ids[positions].tolist(),
                relevance=np.round(relevance[positions], 4).tolist(),
                scores=np.round(scores, 4).tolist(),
                reasons=_reasons(
                    evidence,
                    positions,
                    index.size,
                    chosen,
                    _interest_phrases(index, wanted.get(matcher.interests, ""), rows, row),
                ),
            )
        )
    return results


def match_subscribers(
    matchers: Mapping[int, Matcher], index: BatchIndex, keep: int | None = None
) -> dict[int, Matches]:
    """Subscriber id -> matches; subscribers with identical preferences are evaluated once."""
    # Each matcher hashed once: hashing one walks all its keywords, topics and model weights.
    unique: dict[Matcher, int] = {}
    slots = [unique.setdefault(matcher, len(unique)) for matcher in matchers.values()]
    found = match_many(list(unique), index, keep)
    return {subscriber_id: found[slot] for subscriber_id, slot in zip(matchers, slots, strict=True)}
