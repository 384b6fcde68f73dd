"""Meaning-matching of free text (a subscriber's interests, a topic's description) to papers.

TF-IDF over stems with the IDF fitted on the papers themselves (the batch plus recent stored
papers), sublinear term frequency, unit-length rows; the similarity of many texts to many papers is
then one sparse matrix product. Nothing is downloaded and nothing beyond numpy/scipy is needed.
"""

import math
from collections import Counter
from collections.abc import Sequence
from functools import cached_property, lru_cache

import numpy as np
from scipy import sparse

from subscribers.keywords import STOPWORDS, stem, words

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


class PaperSimilarity:
    """The papers of a batch as TF-IDF rows; `scores(texts)` gives cosine similarities."""

    def __init__(self, paper_texts: Sequence[str], background: Sequence[str] = ()):
        self.model = TfidfModel([*paper_texts, *background])
        # Kept sparse: a day's papers over a real vocabulary would be hundreds of MB dense.
        self._papers_t = self.model.transform(paper_texts).T.tocsr()
        self.paper_count = len(paper_texts)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """A len(texts) x papers array of cosine similarities in [0, 1]."""
        if not texts:
            return np.zeros((0, self.paper_count), dtype=np.float32)
        return (self.model.transform(texts) @ self._papers_t).toarray().astype(np.float32, copy=False)

    @cached_property
    def typicality(self) -> np.ndarray:
        """Each paper's mean cosine similarity to the batch's papers: high for papers that read like all
        the others (digest/matching/liked.py subtracts it, as a linear model's negatives would)."""
        mean_paper = np.asarray(self._papers_t.mean(axis=1)).ravel()
        return (self._papers_t.T @ mean_paper).astype(np.float32, copy=False)
