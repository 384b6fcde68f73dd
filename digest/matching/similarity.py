"""Meaning-matching of free text (a subscriber's interests, a topic's description) to papers.

TF-IDF over stems with the IDF fitted on the papers themselves (the batch plus recent stored
papers), sublinear term frequency, unit-length rows; the similarity of many texts to many papers is
then one sparse matrix product. Beside it: LSA (the same rows in a latent space fitted on those
papers, relating words that occur together) and BM25 (saturated term frequency, length
normalisation, IDF from the same papers), also one matrix product each. Nothing is downloaded and
nothing beyond numpy/scipy is needed. An interest's sentences that say what the reader does not
want are left out of its text first (`wanted_text`).
"""

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import NamedTuple

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import svds

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
# Latent semantic analysis: dimensions kept of the papers' TF-IDF matrix (fewer for small batches),
# and none below this many papers: a handful of abstracts teach no relations between words, and the
# few dimensions left make unrelated papers look identical (LSA similarity then equals TF-IDF's).
LSA_DIMENSIONS = 50
LSA_MIN_PAPERS = 20
# BM25's usual constants (Robertson; Lucene's defaults): term-frequency saturation, length normalisation.
BM25_K1 = 1.2
BM25_B = 0.75
FILLER_WORD, OTHER_WORD = -1, -2  # in InterestWords.terms: not a stem, or a stem not among the weightiest
_JOINER_RE = re.compile(r"[\s-]*")
# A sentence (or a part after ";") that says what the reader does not want: "Not classic RL for
# robots", "I don't want ...", "... are not what I'm after", "... only of side interest".
_SENTENCE_RE = re.compile(r"(?<=[.;!?])\s+")
_UNWANTED_RE = re.compile(r"\b(?:not|nor|never)\b|n't\b|\bside interest", re.IGNORECASE)


@lru_cache(maxsize=200_000)
def _meaning(token: str) -> str | None:
    if len(token) < 2 or token.isdigit() or token.lower() in _SKIP:
        return None
    return stem(token)


def analyze(text: str) -> list[str]:
    """The stems that carry meaning: stopwords, filler and bare numbers removed."""
    return [meaning for meaning in map(_meaning, words(text)) if meaning]


def interest_sentences(interest: str) -> tuple[list[str], list[str]]:
    """The interest's sentences (or parts after ";") that say what is wanted, and those that say
    what is not."""
    sentences = _SENTENCE_RE.split(interest)
    return (
        [sentence for sentence in sentences if not _UNWANTED_RE.search(sentence)],
        [sentence for sentence in sentences if _UNWANTED_RE.search(sentence)],
    )


def wanted_text(interest: str) -> str:
    """The interest without its sentences that say what the reader does not want: their words name
    the unwanted topics, and a similarity would count them as wanted (measured in docs/decisions.md).
    The whole text if every sentence is such."""
    wanted, _ = interest_sentences(interest)
    return " ".join(wanted) if wanted else interest


def paper_text(title: str, abstract: str) -> str:
    # The title says what the paper is about more densely than any sentence of the abstract.
    return f"{title}. {title}. {abstract}"


class TfidfModel:
    def __init__(self, corpus: Sequence[str]):
        document_frequency: Counter[str] = Counter()
        for text in corpus:
            document_frequency.update(set(analyze(text)))
        terms = sorted(document_frequency)
        self.vocabulary = {term: column for column, term in enumerate(terms)}
        self.documents = len(corpus)
        self.document_frequency = np.array([document_frequency[term] for term in terms], dtype=np.float32)
        self.idf = (np.log((1 + self.documents) / (1 + self.document_frequency)) + 1.0).astype(np.float32)

    def counts(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """How often each vocabulary stem occurs in each text (texts x vocabulary)."""
        indptr, indices, values = [0], [], []
        for text in texts:
            counts = Counter(self.vocabulary[term] for term in analyze(text) if term in self.vocabulary)
            indices.append(np.fromiter(counts.keys(), dtype=np.int32, count=len(counts)))
            values.append(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
            indptr.append(indptr[-1] + len(counts))
        return sparse.csr_matrix(
            (
                np.concatenate(values) if values else np.zeros(0, np.float32),
                np.concatenate(indices) if indices else np.zeros(0, np.int32),
                np.array(indptr, dtype=np.int64),
            ),
            shape=(len(texts), len(self.vocabulary)),
            dtype=np.float32,
        )

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Unit-length TF-IDF rows (sublinear term frequency) of the texts."""
        return self.weigh(self.counts(texts))

    def weigh(self, counts: sparse.csr_matrix) -> sparse.csr_matrix:
        rows = counts.copy()
        rows.data = (1.0 + np.log(rows.data)) * self.idf[rows.indices]
        norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
        rows.data /= np.repeat(np.where(norms > 0, norms, 1.0), np.diff(rows.indptr)).astype(np.float32)
        return rows

    def bm25_idf(self) -> np.ndarray:
        """BM25's IDF (Lucene's form, never negative) over the same papers as the TF-IDF's."""
        frequency = self.document_frequency
        return np.log1p((self.documents - frequency + 0.5) / (frequency + 0.5)).astype(np.float32)


def bm25_matrix(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    """Per paper (row) and term, the term's BM25 weight: saturated term frequency, normalised for the
    paper's length, times the term's IDF; a query's score is the sum over its terms."""
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    average = float(lengths.mean()) if len(lengths) and lengths.mean() > 0 else 1.0
    per_row = BM25_K1 * (1 - BM25_B + BM25_B * lengths / average)
    weights = counts.copy()
    frequency = weights.data
    weights.data = (
        frequency * (BM25_K1 + 1) / (frequency + np.repeat(per_row, np.diff(weights.indptr))) * idf[weights.indices]
    ).astype(np.float32)
    return weights


@dataclass
class InterestWords:
    """A free-text interest's weightiest stems (vocabulary columns and weights) and, per word of
    the text, its span, which of those stems it is (FILLER_WORD, OTHER_WORD: none) and whether only
    spaces or hyphens separate it from the word before."""

    text: str
    columns: np.ndarray
    weights: np.ndarray
    spans: list[tuple[int, int]]
    terms: list[int]
    joined: list[bool]
    first_token: dict[int, int]  # stem -> the first word spelling it
    phrases: dict[tuple[int, int], str] = field(default_factory=dict)

    def phrase(self, best: int, mask: int) -> str:
        """The words of the interest around the first one spelling stem `best`, extended over
        neighbours whose stems the paper holds too (bits of `mask`; filler words inside a run are
        kept, punctuation other than hyphens ends it), quoted as the reader wrote them."""
        key = (best, mask)
        found = self.phrases.get(key)
        if found is None:
            start = self.first_token[best]
            first, last = self._run_end(start, -1, mask), self._run_end(start, 1, mask)
            found = self.phrases[key] = f'"{_cut(self.text[self.spans[first][0] : self.spans[last][1]])}"'
        return found

    def _run_end(self, start: int, step: int, mask: int) -> int:
        """The last word holding a stem of `mask` that the run from `start` reaches going `step`."""
        end = start
        for position in range(start + step, len(self.terms) if step > 0 else -1, step):
            term = self.terms[position]
            # joined[i]: word i is joined to word i - 1.
            if not self.joined[position if step > 0 else position + 1]:
                break
            if term == OTHER_WORD or (term >= 0 and not mask >> term & 1):
                break
            if term >= 0:
                end = position
        return end


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


def _latent_space(rows: sparse.csr_matrix, papers: int) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """LSA: the top singular vectors of the TF-IDF matrix (batch and background papers) relate terms
    that occur in the same papers, so "RLHF" and "preference optimization" end up close. Returns
    the term -> latent map (terms x k), the batch's papers as unit latent rows, and their mean row.

    Similarities are centred on the batch's papers only: a run's background shifts every text's
    similarity, and centred on the batch and the background together they barely move, since the
    background outnumbers the batch (docs/decisions.md)."""
    dimensions = min(LSA_DIMENSIONS, min(rows.shape) - 1)
    if rows.shape[0] < LSA_MIN_PAPERS or dimensions < 2:
        return None, np.zeros((papers, 0), dtype=np.float32), np.zeros(0, dtype=np.float32)
    # A fixed start vector: the same papers give the same space on every worker.
    start = np.random.default_rng(0).uniform(size=min(rows.shape))
    _, _, components = svds(rows.astype(np.float64), k=dimensions, v0=start)
    term_space = components.T.astype(np.float32)
    latent = _unit_rows(rows[:papers] @ term_space)
    centre = latent.mean(axis=0) if papers else np.zeros(dimensions, dtype=np.float32)
    return term_space, latent, centre


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PHRASE_MAX_CHARS else text[: PHRASE_MAX_CHARS - 3].rstrip() + "..."


class MeaningScores(NamedTuple):
    """Each texts x papers: TF-IDF cosine similarity in [0, 1], LSA cosine similarity in [-1, 1]
    centred per text (less its mean over the batch's papers), and the BM25 score
    as a share of the most the text's terms could score, in [0, 1)."""

    tfidf: np.ndarray
    lsa: np.ndarray
    bm25: np.ndarray


class PaperSimilarity:
    """The papers of a batch as TF-IDF, LSA and BM25 rows; `scores(texts)` gives cosine similarities,
    `meaning_scores(texts)` all three."""

    def __init__(self, paper_texts: Sequence[str], background: Sequence[str] = ()):
        self.model = TfidfModel([*paper_texts, *background])
        counts = self.model.counts([*paper_texts, *background])
        rows = self.model.weigh(counts)
        # Kept sparse: a day's papers over a real vocabulary would be hundreds of MB dense.
        self._papers_t = rows[: len(paper_texts)].T.tocsr()
        self.paper_count = len(paper_texts)
        self._term_space, self._papers_lsa, self._lsa_centre = _latent_space(rows, len(paper_texts))
        self._bm25_idf = self.model.bm25_idf()
        self._bm25_t = bm25_matrix(counts[: len(paper_texts)], self._bm25_idf).T.tocsr()
        self._holding: dict[int, np.ndarray] = {}

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """A len(texts) x papers array of TF-IDF cosine similarities in [0, 1]."""
        return self._tfidf(self.model.transform(texts))

    def _tfidf(self, rows: sparse.csr_matrix) -> np.ndarray:
        return (rows @ self._papers_t).toarray().astype(np.float32, copy=False)

    def meaning_scores(self, texts: Sequence[str]) -> MeaningScores:
        return self.meaning_scores_of(self.model.transform(texts))

    def meaning_scores_of(self, rows: sparse.csr_matrix) -> MeaningScores:
        """`meaning_scores` of texts already transformed (`model.transform`)."""
        if not rows.shape[0]:
            empty = np.zeros((0, self.paper_count), dtype=np.float32)
            return MeaningScores(empty, empty, empty)
        tfidf = self._tfidf(rows)
        if self._term_space is None:
            lsa = tfidf - tfidf.mean(axis=1, keepdims=True) if self.paper_count else tfidf
        else:
            lsa = self._lsa(_unit_rows(rows @ self._term_space))
        return MeaningScores(tfidf, lsa, self._bm25(rows))

    def _lsa(self, latent: np.ndarray) -> np.ndarray:
        """The texts' centred LSA similarities (the mean cosine over papers is a text's cosine with
        their mean unit row), one text at a time: BLAS rounds a product of many rows differently
        with their number, and a text's scores must not depend on which other texts a chunk holds
        (a paper on a cut-off would flip with the chunk's company)."""
        lsa = np.empty((len(latent), self.paper_count), dtype=np.float32)
        for row, text in enumerate(latent):
            np.matmul(self._papers_lsa, text, out=lsa[row])
            lsa[row] -= np.dot(text, self._lsa_centre)
        return lsa

    def _bm25(self, rows: sparse.csr_matrix) -> np.ndarray:
        """BM25 with each text's distinct terms as the query, divided by the score of a paper holding
        every one of them often (the sum of their IDFs times k1 + 1), so that long and short texts
        compare: in [0, 1)."""
        query = rows.copy()
        query.data = np.ones_like(query.data)
        most = query @ (self._bm25_idf * np.float32(BM25_K1 + 1))
        found = (query @ self._bm25_t).toarray().astype(np.float32, copy=False)
        return found / np.where(most > 0, most, 1.0).astype(np.float32)[:, None]

    def interest_words(self, text: str, rows: sparse.csr_matrix | None = None, row: int = 0) -> InterestWords:
        """The interest's words; `rows[row]` may hold its TF-IDF row already (`model.transform`)."""
        if rows is None:
            rows, row = self.model.transform([text]), 0
        stored = slice(rows.indptr[row], rows.indptr[row + 1])
        top = np.argsort(-rows.data[stored], kind="stable")[:PHRASE_TERMS]
        columns, weights = rows.indices[stored][top], rows.data[stored][top]
        term_of = {int(column): slot for slot, column in enumerate(columns.tolist())}
        spans: list[tuple[int, int]] = []
        terms: list[int] = []
        joined: list[bool] = []
        first_token: dict[int, int] = {}
        end = 0
        for match in _TOKEN_RE.finditer(text):
            meaning = _meaning(fold(match.group()))
            term = term_of.get(self.model.vocabulary.get(meaning, -1), OTHER_WORD) if meaning else FILLER_WORD
            if term >= 0:
                first_token.setdefault(term, len(terms))
            joined.append(bool(terms) and _JOINER_RE.fullmatch(text, end, match.start()) is not None)
            spans.append(match.span())
            terms.append(term)
            end = match.end()
        return InterestWords(text, columns, weights, spans, terms, joined, first_token)

    def shared_phrases(self, interest: InterestWords, positions: np.ndarray) -> list[str]:
        """Per paper (by position), the words of the interest it shares that weigh most, extended to
        the shared words around them, as a reason quotes them."""
        if not len(interest.columns):
            return [""] * len(positions)
        holding = np.vstack([self._papers_holding(column)[positions] for column in interest.columns.tolist()])
        best = (holding * interest.weights[:, None]).argmax(axis=0)
        shared: list[bool] = np.asarray(holding.any(axis=0)).tolist()
        masks = (1 << np.arange(len(interest.columns), dtype=np.int64)) @ holding
        return [
            interest.phrase(term, mask) if has else ""
            for term, mask, has in zip(best.tolist(), masks.tolist(), shared, strict=True)
        ]

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
