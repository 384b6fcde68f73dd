"""Relevance, eighteenth round (issue 14): feeds-l and feeds-m as fit data (bench/relevance/ROUND18-RULE.md).

    python bench/round18.py [--vector-cache DIR] [--draws 1000]

The pool P: round 17's eleven sets and feeds-l and feeds-m, worn since their one reading, loaded by
name with the roles fit and worn only (feeds-i is left out as the stored weights leave it out;
held-out sets are never loaded). Each set is indexed beside the 1,000 background papers; rows, fits,
cross-validation and reports are bench/relevance_fit.py's, bench/round16.py's and bench/round17.py's.

Prints R1 (the shipped features refitted on P): its LORO figures over P (overall and per set) and
each set predicted from the other twelve, beside R0's (the stored weights' fit: each reader predicted
by weights fitted on round 17's eleven sets' other readers only; for a feeds-l or feeds-m reader,
R0's weights) and R0's stored weights as they are. Run it before the weights are rewritten: the
stored weights it reads are the file's. Then each candidate added to R1's features: (z) the
interest's sentence-vector cosine relative to the indexed papers' (the set's and the background's),
in both models; (z2) the same for the keywords' text, in the joint model; (q) round 17's best cosine
with a wanted keyword encoded alone, in the joint model; with the rule's verdict, the LORO both-mode
F1 and the papers each changes. `--vector-cache DIR` keeps sentence vectors in DIR (outside the
repository) between runs. The last lines are machine-readable.
"""

import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# bench.relevance_fit sets Django up (and one BLAS thread, as in a worker) before numpy loads.
import bench.relevance_fit  # noqa: F401, I001

import numpy as np

from bench import round17
from bench.relevance import Reader, background_papers
from bench.relevance_fit import ExtraFeatures
from bench.round16 import combined, paper_position
from bench.round17 import (
    BACKGROUND,
    Candidate,
    bootstrap_draws,
    keyword_cosines,
    parse_arguments,
    pool_rows,
    run_round,
)
from digest.matching import embedding
from digest.matching.engine import BatchIndex, keyword_text
from digest.matching.similarity import wanted_text
from subscribers.keywords import KeywordQuery

NEWLY_WORN = ("feeds-l", "feeds-m")
POOL = (*round17.POOL, *NEWLY_WORN)


def batch_relative(background: Sequence[str]) -> ExtraFeatures:
    """(z), (z2): the interest's and the keywords' sentence-vector cosine with each paper, less its
    mean over the indexed papers (the set's and the background's) and over their standard deviation."""

    @cache
    def background_vectors() -> np.ndarray:
        return embedding.encode(background)

    def relative(index: BatchIndex, text: str) -> np.ndarray:
        cosines = index.embedding_scores([text])[0]
        every = np.concatenate([cosines, background_vectors() @ index.vectors([text])[0]])
        spread = every.std()
        return (cosines - every.mean()) / spread if spread > 0 else np.zeros_like(cosines)

    def features(index: BatchIndex, reader: Reader, query: KeywordQuery) -> dict[str, np.ndarray]:
        keywords = relative(index, keyword_text(query)) if query.include else np.zeros(index.size, np.float32)
        return {"embedding_z": relative(index, wanted_text(reader.interest)), "keywords_embedding_z": keywords}

    return features


CANDIDATES = (
    Candidate("R1", "R1: the shipped features refitted on P"),
    Candidate("z", "(z) the interest's cosine relative to the batch", added=("embedding_z",)),
    Candidate("z2", "(z2) the keywords' cosine relative to the batch", ("keywords_embedding_z",)),
    Candidate("q", "(q) best wanted keyword's cosine", ("keyword_cosine",)),
)


def main() -> None:
    args = parse_arguments()
    background = background_papers(BACKGROUND)
    extra = combined(paper_position, keyword_cosines, batch_relative(background))
    data = pool_rows(POOL, background, extra, args.vector_cache)
    earlier = ("R0", "R0 (round 17's eleven sets' readers only)", round17.POOL)
    stored = "R0's stored weights as they are (in sample for the eleven sets' readers)"
    run_round(data, CANDIDATES, bootstrap_draws(data, args.draws), earlier, stored, POOL)


if __name__ == "__main__":
    main()
