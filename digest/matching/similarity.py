"""Meaning-matching of free text (a subscriber's interests, a topic's description) to papers.

TF-IDF over stems with the IDF fitted on the papers themselves (the batch plus recent stored
papers), sublinear term frequency, unit-length rows; the similarity of many texts to many papers is
then one sparse matrix product. Nothing is downloaded and nothing beyond numpy/scipy is needed.
"""

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
from scipy import sparse

from subscribers.keywords import STOPWORDS, fold, stem, words

# Words every abstract or interest statement uses; they carry no topic.
FILLER = frozenset(
    """paper papers propose proposed proposes present presents show shows shown demonstrate approach
    method methods result results work works novel recent recently existing however furthermore
    moreover thus therefore additionally various well first second one two three state art extensive
    experiments experimental interested interest interests interesting research researcher study
    studies like especially particular particularly anything things thing lot want wants would know
    keen looking follow following field area topics topic including include includes mostly
    also i im i'm me my mine""".split()
)
_SKIP = STOPWORDS | FILLER
_TOKEN_RE = re.compile(r"[^\W_]+")
# A reason names the interest's words a paper shares among its this many weightiest ones.
PHRASE_TERMS = 16
PHRASE_MAX_CHARS = 60
FILLER_WORD, OTHER_WORD = -1, -2  # in InterestWords.tokens: not a stem, or a stem not among the weightiest
_JOINER_RE = re.compile(r"[\s-]*")


@lru_cache(maxsize=200_000)
def _meaning(token: str) -> str | None:
    if len(token) < 2 or token.isdigit() or token.lower() in _SKIP:
        return None
    return stem(token)


def analyze(text: str) -> list[str]:
    """The stems that carry meaning: stopwords, filler and bare numbers removed."""
    return [meaning for meaning in map(_meaning, words(text)) if meaning]


def paper_text(title: str, abstract: str) -> str:
    # The title says what the paper is about more densely than any sentence of the abstract.
    return f"{title}. {title}. {abstract}"


class TfidfModel:
    def __init__(self, corpus: Sequence[str]):
        document_frequency: Counter[str] = Counter()
        for text in corpus:
            document_frequency.update(set(analyze(text)))
        self.vocabulary = {term: column for column, term in enumerate(sorted(document_frequency))}
        documents = len(corpus)
        self.idf = np.array(
            [math.log((1 + documents) / (1 + document_frequency[term])) + 1.0 for term in sorted(document_frequency)],
            dtype=np.float32,
        )

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        indptr, indices, values = [0], [], []
        for text in texts:
            counts = Counter(self.vocabulary[term] for term in analyze(text) if term in self.vocabulary)
            columns = np.fromiter(counts.keys(), dtype=np.int32, count=len(counts))
            weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))) * self.idf[
                columns
            ]
            norm = float(np.sqrt((weights * weights).sum())) if len(weights) else 0.0
            indices.append(columns)
            values.append(weights / norm if norm else weights)
            indptr.append(indptr[-1] + len(columns))
        return sparse.csr_matrix(
            (
                np.concatenate(values) if values else np.zeros(0, np.float32),
                np.concatenate(indices) if indices else np.zeros(0, np.int32),
                np.array(indptr, dtype=np.int64),
            ),
            shape=(len(texts), len(self.vocabulary)),
            dtype=np.float32,
        )


@dataclass
class InterestWords:
    """A free-text interest's weightiest stems (vocabulary columns and weights) and, per word of
    the text, its span and which of those stems it is (-1: filler or not among them)."""

    text: str
    columns: np.ndarray
    weights: np.ndarray
    tokens: list[tuple[int, int, int]]
    phrases: dict[int, str] = field(default_factory=dict)  # mask of shared stems -> what a reason says

    def phrase(self, mask: int) -> str:
        """The interest's words a paper shares, as written: the best run of consecutive shared
        words (filler words inside, no punctuation but hyphens), and a second run when it weighs at
        least half as much."""
        found = self.phrases.get(mask)
        if found is None:
            runs: list[tuple[float, int, int]] = []
            start = end = -1
            terms: set[int] = set()
            for token_start, token_end, term in [*self.tokens, (len(self.text), len(self.text), OTHER_WORD)]:
                joined = start >= 0 and _JOINER_RE.fullmatch(self.text[end:token_start]) is not None
                if term >= 0 and mask >> term & 1 and (start < 0 or joined):
                    start = token_start if start < 0 else start
                    end = token_end
                    terms.add(term)
                    continue
                if term == FILLER_WORD and joined:
                    continue  # may sit inside a run; the run's end stays at its last shared word
                if start >= 0:
                    runs.append((float(self.weights[sorted(terms)].sum()), start, end))
                start, terms = -1, set()
                if term >= 0 and mask >> term & 1:
                    start, end, terms = token_start, token_end, {term}
            runs.sort(key=lambda run: -run[0])
            distinct = {_cut(self.text[a:b]).casefold(): (weight, a, b) for weight, a, b in reversed(runs)}
            best = sorted(distinct.values(), key=lambda run: -run[0])[:2]
            chosen = sorted((run for run in best if run[0] * 2 >= best[0][0]), key=lambda run: run[1])
            found = ", ".join(f'"{_cut(self.text[a:b])}"' for _, a, b in chosen)
            self.phrases[mask] = found
        return found


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PHRASE_MAX_CHARS else text[: PHRASE_MAX_CHARS - 3].rstrip() + "..."


class PaperSimilarity:
    """The papers of a batch as TF-IDF rows; `scores(texts)` gives cosine similarities."""

    def __init__(self, paper_texts: Sequence[str], background: Sequence[str] = ()):
        self.model = TfidfModel([*paper_texts, *background])
        # Kept sparse: a day's papers over a real vocabulary would be hundreds of MB dense.
        self._papers_t = self.model.transform(paper_texts).T.tocsr()
        self.paper_count = len(paper_texts)
        self._interests: dict[str, InterestWords] = {}
        self._holding: dict[int, np.ndarray] = {}

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """A len(texts) x papers array of cosine similarities in [0, 1]."""
        if not texts:
            return np.zeros((0, self.paper_count), dtype=np.float32)
        return (self.model.transform(texts) @ self._papers_t).toarray().astype(np.float32, copy=False)

    def interest_words(self, text: str) -> InterestWords:
        found = self._interests.get(text)
        if found is None:
            [row] = self.model.transform([text])
            top = np.argsort(-row.data, kind="stable")[:PHRASE_TERMS]
            columns, weights = row.indices[top], row.data[top]
            term_of = {int(column): slot for slot, column in enumerate(columns.tolist())}
            tokens = []
            for match in _TOKEN_RE.finditer(text):
                meaning = _meaning(fold(match.group()))
                column = self.model.vocabulary.get(meaning, -1) if meaning else -1
                tokens.append((match.start(), match.end(), term_of.get(column, OTHER_WORD) if meaning else FILLER_WORD))
            found = self._interests[text] = InterestWords(text, columns, weights, tokens)
        return found

    def shared_phrases(self, interest: InterestWords, positions: np.ndarray) -> list[str]:
        """Per paper (by position), the words of the interest it shares, as a reason quotes them."""
        if not len(interest.columns):
            return [""] * len(positions)
        holding = np.vstack([self._papers_holding(int(column))[positions] for column in interest.columns])
        masks = (1 << np.arange(len(interest.columns), dtype=np.int64)) @ holding.astype(np.int64)
        return [interest.phrase(mask) for mask in masks.tolist()]

    def _papers_holding(self, column: int) -> np.ndarray:
        found = self._holding.get(column)
        if found is None:
            found = np.zeros(self.paper_count, dtype=bool)
            found[self._papers_t.indices[self._papers_t.indptr[column] : self._papers_t.indptr[column + 1]]] = True
            self._holding[column] = found
        return found

    @cached_property
    def typicality(self) -> np.ndarray:
        """Each paper's mean cosine similarity to the batch's papers: high for papers that read like all
        the others (digest/matching/liked.py subtracts it, as a linear model's negatives would)."""
        mean_paper = np.asarray(self._papers_t.mean(axis=1)).ravel()
        return (self._papers_t.T @ mean_paper).astype(np.float32, copy=False)
