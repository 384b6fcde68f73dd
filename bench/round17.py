"""Relevance, seventeenth round (issue 14): the worn sets as fit data (bench/relevance/ROUND17-RULE.md).

    python bench/round17.py [--vector-cache DIR] [--draws 1000]

The pool P: the fit sets seeds, feeds-a, feeds-e and feeds-f and the worn sets feeds-b, c, d, g, h, j
and k, loaded by name with the roles fit and worn only (feeds-i is left out as the stored weights
leave it out; held-out sets are never loaded). Each set is indexed beside the 1,000 background
papers; rows, fits and cross-validation are bench/relevance_fit.py's and bench/round16.py's pieces.

Prints R0 (the shipped features refitted on P): its LORO figures over P (overall and per set) and
each set predicted from the other ten, beside the current fit's (each reader predicted by weights
fitted on the four fit sets' other readers only; for a worn reader, the stored weights) and the stored
weights as they are. Then each candidate added to R0's features: (q) the best cosine between the
paper's vector and each wanted keyword's, (b14) the cosine with the keywords' text encoded as one, both
in the joint model, and (r) pairwise interactions of the four strongest features in both models; with
the rule's verdict, the LORO both-mode F1 and the papers each changes. `--vector-cache DIR` keeps
sentence vectors in DIR (outside the repository) between runs. The last lines are machine-readable.
"""

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# bench.relevance_fit sets Django up (and one BLAS thread, as in a worker) before numpy loads.
import bench.relevance_fit  # noqa: F401, I001

import numpy as np

from bench.relevance import FIT, WORN, Reader, background_papers, load_sets
from bench.relevance_fit import (
    VETOED,
    ExtraFeatures,
    Predictor,
    PredictorMaker,
    design_of,
    examples,
    fit,
    predictor,
    probability_of,
    set_of,
)
from bench.round16 import (
    POSITION,
    Columns,
    Outcome,
    added_weights,
    changes,
    combined,
    describe,
    evaluate,
    judge,
    paper_position,
    precision_recall,
)
from bench.vector_cache import vector_cache
from digest.matching import relevance_model
from digest.matching.engine import BatchIndex, keyword_text
from subscribers.keywords import KeywordQuery

FIT_SETS = ("seeds", "feeds-a", "feeds-e", "feeds-f")
WORN_SETS = ("feeds-b", "feeds-c", "feeds-d", "feeds-g", "feeds-h", "feeds-j", "feeds-k")
POOL = (*FIT_SETS, *WORN_SETS)
BACKGROUND = 1000
L2 = 1.0
SEED = 17
STRONGEST = 4  # (r): the features whose pairwise products are added


# -- (q), (b14): the keywords' sentence vectors -----------------------------------------------------


def keyword_cosines(index: BatchIndex, reader: Reader, query: KeywordQuery) -> dict[str, np.ndarray]:
    """(q) the best cosine of the paper with a wanted keyword encoded alone; (b14) the cosine with the
    wanted keywords' text (`keyword_text`) encoded as one. 0 without wanted keywords."""
    if not query.include:
        zeros = np.zeros(index.size, np.float32)
        return {"keyword_cosine": zeros, "keywords_embedding": zeros}
    return {
        "keyword_cosine": index.embedding_scores([term.text for term in query.include]).max(axis=0),
        "keywords_embedding": index.embedding_scores([keyword_text(query)])[0],
    }


# -- (r) pairwise interactions ----------------------------------------------------------------------


def strongest(features: np.ndarray, labels: np.ndarray, train: np.ndarray) -> list[int]:
    """The columns with the largest |weight| x standard deviation on the training rows (sorted)."""
    weights = fit(features[train], labels[train], L2)
    strength = np.abs(weights[1:]) * features[train].std(axis=0)
    return sorted(int(column) for column in np.argsort(-strength, kind="stable")[:STRONGEST])


def with_interactions(features: np.ndarray, labels: np.ndarray, train: np.ndarray) -> np.ndarray:
    """The features and the pairwise products of the strongest ones, standardised on the training rows."""
    pairs = combinations(strongest(features, labels, train), 2)
    products = np.column_stack([features[:, first] * features[:, second] for first, second in pairs])
    mean, scale = products[train].mean(axis=0), products[train].std(axis=0)
    return np.hstack([features, (products - mean) / np.where(scale > 0, scale, 1.0)])


def interaction_predictor(features: np.ndarray, labels: np.ndarray, target: float, l2: float) -> Predictor:
    """relevance_fit.predictor over the features and, chosen inside the fit, their interactions."""

    def predicted_apart(train: np.ndarray) -> np.ndarray:
        return predictor(with_interactions(features, labels, train), labels, target, l2)(train)

    return predicted_apart


# -- the candidates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    name: str
    label: str
    joint_added: tuple[str, ...] = ()  # features added to the joint model
    make: PredictorMaker = predictor
    added: tuple[str, ...] = ()  # features added to both models


CANDIDATES = (
    Candidate("R0", "R0: the shipped features refitted on P"),
    Candidate("q", "(q) best wanted keyword's cosine", ("keyword_cosine",)),
    Candidate("b14", "(b14) the keywords' text cosine", ("keywords_embedding",)),
    Candidate("r", "(r) pairwise interactions of the four strongest features", make=interaction_predictor),
)


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def per_set(predicted: np.ndarray, labels: np.ndarray, readers: np.ndarray, pool: Sequence[str] = POOL) -> str:
    sets = set_of(readers)
    figures = []
    for name in pool:
        p, r, hits, picked = precision_recall(predicted[sets == name], labels[sets == name])
        figures.append(f"{name} {p:.2f} / {r:.2f} ({hits} / {picked})")
    return ", ".join(figures)


def as_stored(columns: Columns, labels: np.ndarray, with_keywords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored weights and cut-offs as they are, on every row: the description alone, and what a
    run picks in both mode (the joint model or the confident description, less vetoes)."""
    models = relevance_model.MODELS

    def probability(name: str, features: Sequence[str]) -> np.ndarray:
        weights = np.array([models[name].intercept, *models[name].weights])
        return probability_of(weights, design_of(columns, features))

    description = probability("description", relevance_model.DESCRIPTION_FEATURES)
    joint = probability("both", relevance_model.BOTH_FEATURES)
    vetoed = np.concatenate(columns[VETOED]) > 0
    picked = (joint >= models["both"].cut) | (description >= (models["description"].confident_cut or 1.0))
    rows = with_keywords
    return description >= models["description"].cut, (picked & ~vetoed)[rows]


def report_refit(
    fits: Sequence[tuple[str, Outcome]],
    columns: Columns,
    labels: np.ndarray,
    with_keywords: np.ndarray,
    readers: np.ndarray,
    pool: Sequence[str],
    stored: str,
) -> None:
    """Each titled fit's LORO figures, overall and per set, then the stored weights as they are."""
    rows = with_keywords
    description, both = as_stored(columns, labels, with_keywords)
    for title, outcome in fits:
        print(f"\n{title}")
        for line in describe(outcome, labels, with_keywords, readers):
            print("  " + line)
        print("  LORO both per set: " + per_set(outcome.both, labels[rows], readers[rows], pool))
        print("  LORO description per set: " + per_set(outcome.description, labels, readers, pool))
    print(f"\n{stored}")
    for name, predicted, wanted in (("description", description, labels), ("both", both, labels[rows])):
        p, r, hits, picked = precision_recall(predicted, wanted)
        print(f"  {name} {p:.3f} / {r:.3f} ({hits} / {picked})")
    print("  both per set: " + per_set(both, labels[rows], readers[rows], pool))


def report_interactions(columns: Columns, labels: np.ndarray, with_keywords: np.ndarray) -> None:
    """(r): the strongest features when each model is fitted on every row of P."""
    for model, names, rows in (
        ("description", relevance_model.DESCRIPTION_FEATURES, np.ones(len(labels), dtype=bool)),
        ("joint", relevance_model.BOTH_FEATURES, with_keywords),
    ):
        features = design_of(columns, names)[rows]
        chosen = strongest(features, labels[rows], np.ones(rows.sum(), dtype=bool))
        print(f"  {model}: strongest on every row: {', '.join(names[column] for column in chosen)}")


@dataclass(frozen=True)
class PoolRows:
    """examples()'s rows of a pool's sets, as arrays, and each set's paper titles (to name changes)."""

    columns: Columns
    labels: np.ndarray
    with_keywords: np.ndarray
    readers: np.ndarray
    titles: dict[str, list[str]]


def pool_rows(pool: Sequence[str], background: list[str], extra: ExtraFeatures, cache: Path | None) -> PoolRows:
    """The pool's sets (fit and worn only: a held-out set is never loaded), each indexed beside the
    background, with these extra features; sentence vectors kept in `cache` (a folder) if given."""
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    sets = load_sets(pool, roles=(FIT, WORN))
    assert sorted(labelled.name for labelled in sets) == sorted(pool), "a set of P is neither fit nor worn"
    titles = {labelled.name: [paper.title for paper in labelled.papers] for labelled in sets}
    print(f"P: {', '.join(pool)} (held-out sets are never read); background {len(background)} papers")
    with vector_cache(cache / "sentences.npz" if cache else None):
        columns, label_list, keyword_list, reader_list, used = examples(
            background, sets=pool, extra=extra, roles=(FIT, WORN)
        )
    labels, with_keywords, readers = np.array(label_list), np.array(keyword_list), np.array(reader_list)
    rows = with_keywords
    print(f"rows of {', '.join(used)}")
    print(
        f"{len(np.unique(readers))} readers ({len(np.unique(readers[rows]))} with keywords), "
        f"{len(labels)} judged pairs, {int(labels.sum())} wanted"
    )
    for name in pool:
        mine = set_of(readers) == name
        found = f"{len(np.unique(readers[mine]))} readers, {int(mine.sum())} pairs, {int(labels[mine].sum())} wanted"
        print(f"  {name}: {found}")
    return PoolRows(columns, labels, with_keywords, readers, titles)


def bootstrap_draws(data: PoolRows, count: int) -> np.ndarray:
    """The bootstrap's draws of the readers with keywords (seed 17), each drawn with replacement."""
    readers = len(np.unique(data.readers[data.with_keywords]))
    return np.random.default_rng(SEED).integers(0, readers, (count, readers))


def candidate_outcomes(data: PoolRows, candidates: Sequence[Candidate]) -> dict[str, Outcome]:
    return {
        candidate.name: evaluate(
            data.columns,
            data.labels,
            data.with_keywords,
            data.readers,
            candidate.added,
            candidate.joint_added,
            candidate.make,
        )
        for candidate in candidates
    }


def report_candidates(
    data: PoolRows, candidates: Sequence[Candidate], outcomes: dict[str, Outcome], draws: np.ndarray
) -> list[str]:
    """Each candidate's figures, the rule's verdict against the first (the refit) and the papers it
    changes; returns the machine-readable lines."""
    columns, labels, with_keywords, readers = data.columns, data.labels, data.with_keywords, data.readers
    rows = with_keywords
    baseline = outcomes[candidates[0].name]
    positions = np.concatenate(columns[POSITION])[rows]
    machine = []
    for candidate in candidates:
        outcome = outcomes[candidate.name]
        p, r, *_ = precision_recall(outcome.both, labels[rows])
        print(f"\n{candidate.label}: LORO both F1 {f1(p, r):.3f}")
        for line in describe(outcome, labels, with_keywords, readers):
            print("  " + line)
        if candidate.added or candidate.joint_added:
            print("  " + added_weights(columns, labels, with_keywords, candidate.added, candidate.joint_added))
        if candidate.make is interaction_predictor:
            report_interactions(columns, labels, with_keywords)
        if outcome is baseline:
            continue
        line = judge(candidate.name, baseline, outcome, labels[rows], readers[rows], draws)
        machine.append(f"{line} f1={f1(p, r):.3f}")
        for change in changes(baseline, outcome, labels[rows], readers[rows], positions, data.titles):
            print(change)
    return machine


def row_lines(data: PoolRows, fits: Sequence[tuple[str, Outcome]]) -> list[str]:
    """Machine-readable LORO both-mode figures of each named fit."""
    lines = []
    for name, outcome in fits:
        p, r, hits, picked = precision_recall(outcome.both, data.labels[data.with_keywords])
        lines.append(f"row={name} precision={p:.3f} recall={r:.3f} f1={f1(p, r):.3f} found={hits} picked={picked}")
    return lines


def run_round(
    data: PoolRows,
    candidates: Sequence[Candidate],
    draws: np.ndarray,
    earlier: tuple[str, str, Sequence[str]],
    stored: str,
    pool: Sequence[str] = POOL,
) -> None:
    """The refit (the first candidate) beside the earlier fit, then each candidate judged against the
    refit; the machine-readable lines last. `earlier`: its machine name, its title and the sets it
    was fitted on (each reader is predicted by weights fitted on those sets' other readers only)."""
    name, title, sets = earlier
    before = evaluate(
        data.columns, data.labels, data.with_keywords, data.readers, (), allowed=np.isin(set_of(data.readers), sets)
    )
    outcomes = candidate_outcomes(data, candidates)
    refit = candidates[0].name
    fits = ((f"{refit}, fitted on P", outcomes[refit]), (title, before))
    report_refit(fits, data.columns, data.labels, data.with_keywords, data.readers, pool, stored)
    machine = report_candidates(data, candidates, outcomes, draws)
    print()
    for line in (*row_lines(data, ((name, before), (refit, outcomes[refit]))), *machine):
        print(line)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vector-cache", type=Path, help="a folder keeping sentence vectors between runs")
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap draws over readers")
    return parser.parse_args()


def main() -> None:
    args = parse_arguments()
    data = pool_rows(POOL, background_papers(BACKGROUND), combined(paper_position, keyword_cosines), args.vector_cache)
    earlier = ("stored_fit", "the current fit (four fit sets' readers only)", FIT_SETS)
    stored = "the stored weights as they are (in sample for the fit sets' readers)"
    run_round(data, CANDIDATES, bootstrap_draws(data, args.draws), earlier, stored)


if __name__ == "__main__":
    main()
