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
# Latent semantic analysis: dimensions kept of the papers' TF-IDF matrix (fewer for tiny batches).
LSA_DIMENSIONS = 50
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
    the text, its span, which of those stems it is (FILLER_WORD, OTHER_WORD: none) and whether only
    spaces or hyphens separate it from the word before."""

    text: str
    columns: np.ndarray
    weights: np.ndarray
    tokens: list[tuple[int, int, int, bool]]
    first_token: dict[int, int]  # stem -> the first word spelling it
    phrases: dict[tuple[int, int], str] = field(default_factory=dict)

    def phrase(self, best: int, mask: int) -> str:
        """The words of the interest around the first one spelling stem `best`, extended over
        neighbours whose stems the paper holds too (bits of `mask`; filler words inside a run are
        kept, punctuation other than hyphens ends it), quoted as the reader wrote them."""
        key = (best, mask)
        found = self.phrases.get(key)
        if found is None:
            first = last = self.first_token[best]
            for step in (-1, 1):
                edge = position = first if step < 0 else last
                while 0 <= position + step < len(self.tokens):
                    joined = self.tokens[max(position, position + step)][3]
                    _, _, term, _ = self.tokens[position + step]
                    if not joined or term == OTHER_WORD or (term >= 0 and not mask >> term & 1):
                        break
                    position += step
                    if term >= 0:
                        edge = position
                first, last = (edge, last) if step < 0 else (first, edge)
            found = self.phrases[key] = f'"{_cut(self.text[self.tokens[first][0] : self.tokens[last][1]])}"'
        return found


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


def _latent_space(rows: sparse.csr_matrix, papers: int) -> tuple[np.ndarray | None, np.ndarray]:
    """LSA: the top singular vectors of the TF-IDF matrix (batch and background papers) relate terms
    that occur in the same papers, so "RLHF" and "preference optimization" end up close. Returns
    the term -> latent map (terms x k) and the batch's papers as unit latent rows."""
    dimensions = min(LSA_DIMENSIONS, min(rows.shape) - 1)
    if dimensions < 2:
        return None, np.zeros((papers, 0), dtype=np.float32)
    # A fixed start vector: the same papers give the same space on every worker.
    start = np.random.default_rng(0).uniform(size=min(rows.shape))
    _, _, components = svds(rows.astype(np.float64), k=dimensions, v0=start)
    term_space = components.T.astype(np.float32)
    return term_space, _unit_rows(rows[:papers] @ term_space)


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PHRASE_MAX_CHARS else text[: PHRASE_MAX_CHARS - 3].rstrip() + "..."


class PaperSimilarity:
    """The papers of a batch as TF-IDF rows; `scores(texts)` gives cosine similarities."""

    def __init__(self, paper_texts: Sequence[str], background: Sequence[str] = ()):
        self.model = TfidfModel([*paper_texts, *background])
        rows = self.model.transform([*paper_texts, *background])
        # Kept sparse: a day's papers over a real vocabulary would be hundreds of MB dense.
        self._papers_t = rows[: len(paper_texts)].T.tocsr()
        self.paper_count = len(paper_texts)
        self._term_space, self._papers_lsa = _latent_space(rows, len(paper_texts))
        self._holding: dict[int, np.ndarray] = {}

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """A len(texts) x papers array of cosine similarities in [0, 1]."""
        return self.both_scores(texts)[0]

    def both_scores(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """TF-IDF cosine similarities and LSA cosine similarities (in [-1, 1]), each texts x papers."""
        return self.both_scores_of(self.model.transform(texts))

    def both_scores_of(self, rows: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """`both_scores` of texts already transformed (`model.transform`)."""
        if not rows.shape[0]:
            empty = np.zeros((0, self.paper_count), dtype=np.float32)
            return empty, empty
        tfidf = (rows @ self._papers_t).toarray().astype(np.float32, copy=False)
        if self._term_space is None:
            return tfidf, tfidf
        return tfidf, _unit_rows(rows @ self._term_space) @ self._papers_lsa.T

    def interest_words(self, text: str, rows: sparse.csr_matrix | None = None, row: int = 0) -> InterestWords:
        """The interest's words; `rows[row]` may hold its TF-IDF row already (`model.transform`)."""
        if rows is None:
            rows, row = self.model.transform([text]), 0
        stored = slice(rows.indptr[row], rows.indptr[row + 1])
        top = np.argsort(-rows.data[stored], kind="stable")[:PHRASE_TERMS]
        columns, weights = rows.indices[stored][top], rows.data[stored][top]
        term_of = {int(column): slot for slot, column in enumerate(columns.tolist())}
        tokens: list[tuple[int, int, int, bool]] = []
        first_token: dict[int, int] = {}
        end = 0
        for match in _TOKEN_RE.finditer(text):
            meaning = _meaning(fold(match.group()))
            term = term_of.get(self.model.vocabulary.get(meaning, -1), OTHER_WORD) if meaning else FILLER_WORD
            if term >= 0:
                first_token.setdefault(term, len(tokens))
            joined = bool(tokens) and _JOINER_RE.fullmatch(text, end, match.start()) is not None
            tokens.append((match.start(), match.end(), term, joined))
            end = match.end()
        return InterestWords(text, columns, weights, tokens, first_token)

    def shared_phrases(self, interest: InterestWords, positions: np.ndarray) -> list[str]:
        """Per paper (by position), the words of the interest it shares that weigh most, extended to
        the shared words around them, as a reason quotes them."""
        if not len(interest.columns):
            return [""] * len(positions)
        holding = np.vstack([self._papers_holding(int(column))[positions] for column in interest.columns])
        best = (holding * interest.weights[:, None]).argmax(axis=0)
        shared: list[bool] = np.asarray(holding.any(axis=0)).tolist()
        masks = (1 << np.arange(len(interest.columns), dtype=np.int64)) @ holding.astype(np.int64)
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

    def term_rows(self, columns: np.ndarray) -> sparse.csr_matrix:
        """The papers' TF-IDF weights of the given vocabulary columns, one row per column (a reader's
        own model, digest/matching/reader_model.py, is a weight per term)."""
        return self._papers_t[columns]
