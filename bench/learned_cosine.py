"""Round 16 (y) of issue 14: a learned diagonal metric over the sentence vectors, stacked without leakage.

    python bench/learned_cosine.py [--vector-cache FILE.npz] [--draws 1000]

The rule, written before any figure was computed, is bench/relevance/ROUND16Y-RULE.md. In short:
for a (reader, paper) row with the interest's sentence vector q and the paper's p, the 384 products
x = 384 * q * p are the features of an L2-regularised logistic regression (the "diagonal model"), and
its weighted sum w . x (a cosine with a weight per dimension) is added to the relevance models as
"embedding_learned"; (y2) also adds the same over the keywords' vector, in the joint model. Inside
every fit of the cross-validation the diagonal model only sees the fit's training readers: their
rows' values are cross-fitted by leaving one fit set out, the strength is chosen the same way, and
the predicted rows take a model fitted on all the training rows.

Only the fit sets seeds, feeds-a, feeds-e and feeds-f are loaded (held-out sets never are), each
indexed beside background_papers(1000), as `bench/relevance_fit.py --background 1000 --without
feeds-i` fits the stored weights. Prints, per candidate, round 15's figures: LORO description, joint
alone and both-mode precision / recall, the paired change against the shipped features with its
bootstrap sd over readers, the most-helped reader, each fit set predicted from the others, the keep
rule's verdict, and the single features' average precision (plain cosine against learned).
"""

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# bench.relevance_fit sets Django up (and one BLAS thread, as in a worker) before numpy loads.
import bench.relevance_fit  # noqa: F401, I001

import numpy as np

from bench.relevance import LabelledSet, background_papers, load_sets
import bench.round16 as round16
from bench.round16 import per_reader, precision_recall
from bench.vector_cache import vector_cache
from bench.relevance_fit import (
    CONFIDENT_PRECISION,
    TARGET_PRECISION,
    VETOED,
    Predictor,
    either,
    examples,
    fit,
    from_the_others,
    leave_one_reader_out,
    predictor,
    probability_of,
    set_of,
    unless,
)
from digest.matching import embedding, relevance_model
from digest.matching.engine import keyword_text
from digest.matching.similarity import wanted_text
from subscribers.keywords import parse_keywords

FIT_SETS = ("seeds", "feeds-a", "feeds-e", "feeds-f")
BACKGROUND = 1000
L2 = 1.0  # the relevance models' own penalty, as stored
STRENGTHS = (1.0, 10.0, 100.0, 1000.0, 10000.0)  # the diagonal model's L2 grid
SCALE = embedding.DIMENSIONS  # the products' mean is then the cosine
SEED = 16
LEARNED = "embedding_learned"
KEYWORDS_LEARNED = "keywords_embedding_learned"


@dataclass
class VectorRows:
    """Per row of examples() (same order): the interest's, the keywords' and the paper's sentence
    vectors, and the paper's title."""

    interest: np.ndarray
    keywords: np.ndarray
    paper: np.ndarray
    titles: list[str]


def vector_rows(sets: Sequence[LabelledSet]) -> VectorRows:
    """The sentence vectors of every (reader, judged paper) row, walking the sets as examples() does."""
    interest, keywords, paper, titles = [], [], [], []
    for labelled in sets:
        vectors = embedding.encode([embedding.embedding_text(p.title, p.abstract) for p in labelled.papers])
        for reader in labelled.readers:
            if not reader.interest:
                continue
            query = parse_keywords(reader.keywords)
            wanted = embedding.encode([wanted_text(reader.interest)])[0]
            said = embedding.encode([keyword_text(query)])[0] if query.include else np.zeros_like(wanted)
            judged = [position for position, label in reader.labels.items() if label != "borderline"]
            interest += [wanted] * len(judged)
            keywords += [said] * len(judged)
            paper.append(vectors[judged])
            titles += [labelled.papers[position].title for position in judged]
    return VectorRows(np.vstack(interest), np.vstack(keywords), np.vstack(paper), titles)


def log_loss(weights: np.ndarray, features: np.ndarray, labels: np.ndarray) -> float:
    probability = np.clip(probability_of(weights, features), 1e-12, 1 - 1e-12)
    return float(-(labels * np.log(probability) + (1 - labels) * np.log(1 - probability)).sum())


@dataclass
class Learned:
    """The "embedding_learned" column of one evaluation's rows for each training mask: the diagonal
    model's weighted sums, cross-fitted on the training rows (leave one fit set out) and fitted on
    all of them for the rest, the L2 strength chosen by the same leave-one-set-out log loss."""

    products: np.ndarray
    labels: np.ndarray
    sets: np.ndarray
    columns: dict[bytes, np.ndarray] = field(default_factory=dict)
    chosen: dict[bytes, float] = field(default_factory=dict)

    def column(self, train: np.ndarray) -> np.ndarray:
        key = train.tobytes()
        if key not in self.columns:
            self.columns[key], self.chosen[key] = self._column(train)
        return self.columns[key]

    def _column(self, train: np.ndarray) -> tuple[np.ndarray, float]:
        best: tuple[float, float, np.ndarray] | None = None
        for strength in sorted(STRENGTHS, reverse=True):  # ties keep the larger strength
            sums = np.zeros(len(self.labels))
            loss = 0.0
            for group in np.unique(self.sets[train]):
                inner, left = train & (self.sets != group), train & (self.sets == group)
                weights = fit(self.products[inner], self.labels[inner], strength)
                sums[left] = self.products[left] @ weights[1:]
                loss += log_loss(weights, self.products[left], self.labels[left])
            if best is None or loss < best[0]:
                best = (loss, strength, sums)
        assert best is not None
        _, strength, column = best
        weights = fit(self.products[train], self.labels[train], strength)
        column[~train] = self.products[~train] @ weights[1:]
        return column, strength


def stacked(base: np.ndarray, learned: Sequence[Learned], labels: np.ndarray, target: float) -> Predictor:
    """relevance_fit.predictor over the base features plus each learned column of the same fold."""

    def predicted_apart(train: np.ndarray) -> np.ndarray:
        features = np.column_stack([base, *(found.column(train) for found in learned)])
        return predictor(features, labels, target, L2)(train)

    return predicted_apart


def stacked_probability(base: np.ndarray, learned: Sequence[Learned], labels: np.ndarray):  # type: ignore[no-untyped-def]
    def probability_apart(train: np.ndarray) -> np.ndarray:
        features = np.column_stack([base, *(found.column(train) for found in learned)])
        weights = fit(features[train], labels[train], L2)
        return probability_of(weights, features[~train])

    return probability_apart


@dataclass
class Outcome:
    description: np.ndarray
    joint: np.ndarray
    both: np.ndarray
    others: dict[str, np.ndarray]
    description_ap: float
    joint_ap: float
    learned: dict[str, Learned]


@dataclass
class Data:
    design: dict[str, np.ndarray]  # "description", "both": the shipped features of every row
    products: dict[str, np.ndarray]  # "interest", "keywords": 384 * q * p, 384 * k * p
    labels: np.ndarray
    with_keywords: np.ndarray
    readers: np.ndarray
    vetoed: np.ndarray
    titles: list[str]
    plain: dict[str, np.ndarray]  # "interest", "keywords": the plain cosines
    learned: dict[tuple[str, bytes], Learned] = field(default_factory=dict)

    def learned_over(self, product: str, rows: np.ndarray) -> Learned:
        """One Learned per product and rows, shared by the candidates and modes using it (all the
        fit sets' readers have keywords, so description and both mode fit on the same rows)."""
        key = (product, rows.tobytes())
        if key not in self.learned:
            self.learned[key] = Learned(self.products[product][rows], self.labels[rows], set_of(self.readers[rows]))
        return self.learned[key]


def evaluate(data: Data, interest: bool, keywords: bool) -> Outcome:
    """One candidate's LORO and from-the-others predictions (both mode over readers with keywords)."""
    labels, readers, rows = data.labels, data.readers, data.with_keywords
    everyone = [data.learned_over("interest", np.ones(len(labels), dtype=bool))] if interest else []
    description = stacked(data.design["description"], everyone, labels, TARGET_PRECISION["description"])
    # Both mode: every fit on the rows of readers with keywords, as relevance_fit's cross-validation.
    with_kw = [data.learned_over("interest", rows)] if interest else []
    said = [data.learned_over("keywords", rows)] if keywords else []
    joint = unless(
        stacked(data.design["both"][rows], with_kw + said, labels[rows], TARGET_PRECISION["both"]), data.vetoed[rows]
    )
    sure = stacked(data.design["description"][rows], with_kw, labels[rows], CONFIDENT_PRECISION)
    picked = unless(either(joint, sure), data.vetoed[rows])
    description_probability = leave_one_reader_out(
        stacked_probability(data.design["description"], everyone, labels), readers, float
    )
    joint_probability = leave_one_reader_out(
        stacked_probability(data.design["both"][rows], with_kw + said, labels[rows]), readers[rows], float
    )
    learned = {}
    if interest:
        learned["interest"] = everyone[0]
        learned["interest, keyword rows"] = with_kw[0]
    if keywords:
        learned["keywords"] = said[0]
    return Outcome(
        description=leave_one_reader_out(description, readers),
        joint=leave_one_reader_out(joint, readers[rows]),
        both=leave_one_reader_out(picked, readers[rows]),
        others=from_the_others(picked, readers[rows]),
        description_ap=average_precision(description_probability, labels),
        joint_ap=average_precision(joint_probability, labels[rows]),
        learned=learned,
    )


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    wanted = labels[order] == 1
    if not wanted.any():
        return float("nan")
    return float((np.cumsum(wanted)[wanted] / (np.flatnonzero(wanted) + 1)).mean())


def reader_mean_ap(scores: np.ndarray, labels: np.ndarray, readers: np.ndarray) -> float:
    found = [
        average_precision(scores[readers == name], labels[readers == name])
        for name in np.unique(readers)
        if (labels[readers == name] == 1).any()
    ]
    return float(np.mean(found))


def describe(name: str, outcome: Outcome, data: Data) -> None:
    rows = data.with_keywords
    labels = data.labels
    parts = []
    for title, predicted, wanted in (
        ("description", outcome.description, labels),
        ("joint alone", outcome.joint, labels[rows]),
        ("both", outcome.both, labels[rows]),
    ):
        p, r, hits, picked = precision_recall(predicted, wanted)
        parts.append(f"{title} {p:.3f} / {r:.3f} ({hits} / {picked})")
    print(f"{name}: LORO " + "; ".join(parts))
    sets = set_of(data.readers[rows])
    others = []
    for set_name, predicted in outcome.others.items():
        p, r, *_ = precision_recall(predicted, labels[rows][sets == set_name])
        others.append(f"{set_name} {p:.2f} / {r:.2f}")
    print("  from the others, both: " + ", ".join(others))
    print(f"  pooled LORO AP of the models: description {outcome.description_ap:.3f}, joint {outcome.joint_ap:.3f}")
    for which, found in outcome.learned.items():
        print(f"  strengths chosen ({which}): {dict(sorted(Counter(found.chosen.values()).items()))}")


def judge(name: str, shipped: Outcome, outcome: Outcome, data: Data, draws: np.ndarray) -> None:
    """The rule's figures for one candidate against the shipped features (round 16's judge), and
    the both-mode papers it changes."""
    rows = data.with_keywords
    labels, readers = data.labels[rows], data.readers[rows]
    machine_line = round16.judge(name, shipped, outcome, labels, readers, draws)  # type: ignore[arg-type]
    gains = per_reader(outcome.both, labels, readers)[:, 0] - per_reader(shipped.both, labels, readers)[:, 0]
    print(f"  readers gaining / losing wanted papers: {int((gains > 0).sum())} / {int((gains < 0).sum())}")
    titles = [title for title, kept in zip(data.titles, rows, strict=True) if kept]
    for row in np.flatnonzero(shipped.both != outcome.both):
        sign = "+" if outcome.both[row] else "-"
        label = "wanted" if labels[row] == 1 else "unwanted"
        print(f"    {sign} {label} {readers[row]}: {titles[row][:90]}")
    print(machine_line)


def single_features(data: Data, outcome: Outcome) -> None:
    """Average precision of the plain cosine (its own ranking) against the LORO learned one."""
    for which, rows in (("interest", np.ones(len(data.labels), dtype=bool)), ("keywords", data.with_keywords)):
        found = outcome.learned.get(which)
        if found is None:
            continue
        readers, labels = data.readers[rows], data.labels[rows]
        learned = np.zeros(len(labels))
        for reader in np.unique(readers):
            apart = readers == reader
            learned[apart] = found.column(~apart)[apart]
        plain = data.plain[which][rows]
        print(
            f"  single feature, {which} ({len(np.unique(readers))} readers, {int(labels.sum())} wanted): "
            f"pooled AP plain {average_precision(plain, labels):.3f} learned {average_precision(learned, labels):.3f}; "
            f"reader mean AP plain {reader_mean_ap(plain, labels, readers):.3f} "
            f"learned {reader_mean_ap(learned, labels, readers):.3f}"
        )


def added_weights(data: Data, interest: bool, keywords: bool) -> None:
    """The relevance models' weights with the learned columns cross-fitted over every row (four sets)."""
    rows = data.with_keywords
    sets = set_of(data.readers)
    every = np.ones(len(data.labels), dtype=bool)
    for model, names, kept, columns in (
        ("description", relevance_model.DESCRIPTION_FEATURES, every, ("interest",) if interest else ()),
        (
            "joint",
            relevance_model.BOTH_FEATURES,
            rows,
            (("interest",) if interest else ()) + (("keywords",) if keywords else ()),
        ),
    ):
        extra = []
        for column in columns:
            found = Learned(data.products[column][kept], data.labels[kept], sets[kept])
            extra.append(found.column(np.ones(int(kept.sum()), dtype=bool)))
            print(f"  {model}, {column}: strength chosen over every row {next(iter(found.chosen.values()))}")
        design = data.design["description" if model == "description" else "both"][kept]
        weights = fit(np.column_stack([design, *extra]), data.labels[kept], L2)
        labels = (*names, *(LEARNED if c == "interest" else KEYWORDS_LEARNED for c in columns))
        print(
            f"  {model} fitted on every row: "
            + ", ".join(f"{n} {w:+.2f}" for n, w in zip(labels, weights[1:], strict=True))
        )


def load(background: list[str]) -> Data:
    sets = load_sets(FIT_SETS)
    columns, label_list, keyword_list, reader_list, used = examples(background, sets=FIT_SETS)
    print(f"sets: {', '.join(used)}; each beside {len(background)} background papers")
    found = {name: np.concatenate(values) for name, values in columns.items()}
    vectors = vector_rows(sets)
    plain = {
        "interest": (vectors.interest * vectors.paper).sum(axis=1),
        "keywords": (vectors.keywords * vectors.paper).sum(axis=1),
    }
    gap = float(np.abs(plain["interest"] - found["embedding"]).max())
    print(f"rows {len(label_list)}; largest |q . p - embedding| {gap:.2e}")
    if gap > 1e-4:
        raise SystemExit("the vector rows are not aligned with examples()'")
    design = {
        name: np.column_stack([found[feature] for feature in names]).astype(np.float64)
        for name, names in (
            ("description", relevance_model.DESCRIPTION_FEATURES),
            ("both", relevance_model.BOTH_FEATURES),
        )
    }
    return Data(
        design=design,
        products={
            "interest": SCALE * (vectors.interest * vectors.paper).astype(np.float64),
            "keywords": SCALE * (vectors.keywords * vectors.paper).astype(np.float64),
        },
        labels=np.array(label_list),
        with_keywords=np.array(keyword_list),
        readers=np.array(reader_list),
        vetoed=found[VETOED] > 0,
        titles=vectors.titles,
        plain=plain,
    )


def diagnose(data: Data) -> None:
    """Not a candidate: whether 384 weights beat one, out of set, and how the stacked column's scale
    moves between its cross-fitted (training) and fully fitted (predicted) values."""
    sets = set_of(data.readers)
    for product in ("interest", "keywords"):
        x, plain, labels = data.products[product], data.plain[product][:, None], data.labels
        losses = {"plain cosine, one weight (L2 1)": 0.0} | {f"diagonal, L2 {s:g}": 0.0 for s in STRENGTHS}
        for group in np.unique(sets):
            inner, left = sets != group, sets == group
            weights = fit(plain[inner], labels[inner], L2)
            losses["plain cosine, one weight (L2 1)"] += log_loss(weights, plain[left], labels[left])
            for strength in STRENGTHS:
                weights = fit(x[inner], labels[inner], strength)
                losses[f"diagonal, L2 {strength:g}"] += log_loss(weights, x[left], labels[left])
        print(
            f"  {product}: leave one set out, mean log loss: "
            + ", ".join(f"{name} {loss / len(labels):.4f}" for name, loss in losses.items())
        )
        for strength in (100.0, 1000.0):
            w = fit(x, labels, strength)[1:]
            print(
                f"  {product}: every row, L2 {strength:g}: weights mean {w.mean():+.3f} sd {w.std():.3f}, "
                f"{int((w > 0).sum())} of {len(w)} positive"
            )
        for name in np.unique(sets):
            train = sets != name
            found = data.learned_over(product, np.ones(len(labels), dtype=bool))
            crossed = found.column(train)[train]
            weights = fit(x[train], labels[train], found.chosen[train.tobytes()])
            full = x[train] @ weights[1:]
            slope = float(np.polyfit(crossed, full, 1)[0])
            print(
                f"  {product}, {name} from the others: training rows' cross-fitted values mean {crossed.mean():+.2f} "
                f"sd {crossed.std():.2f}; the full fit's on the same rows mean {full.mean():+.2f} sd {full.std():.2f} "
                f"(slope {slope:.2f}); predicted rows' mean {found.column(train)[~train].mean():+.2f} "
                f"sd {found.column(train)[~train].std():.2f}"
            )


CANDIDATES = (("shipped", False, False), ("y", True, False), ("y2", True, True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vector-cache", type=Path, help="an .npz file keeping the encoded vectors between runs")
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap draws over readers")
    parser.add_argument("--diagnose", action="store_true", help="only the diagonal model's diagnostics")
    parser.add_argument("--only", choices=[name for name, *_ in CANDIDATES], action="append", help="these candidates")
    args = parser.parse_args()
    with vector_cache(args.vector_cache):
        data = load(background_papers(BACKGROUND))
    rows = data.with_keywords
    count = len(np.unique(data.readers[rows]))
    print(
        f"readers {len(np.unique(data.readers))} ({count} with keywords); wanted {int(data.labels.sum())} "
        f"({int(data.labels[rows].sum())} with keywords)"
    )
    if args.diagnose:
        diagnose(data)
        return
    draws = np.random.default_rng(SEED).integers(0, count, (args.draws, count))
    shipped = None
    for name, interest, keywords in CANDIDATES:
        if args.only and name not in args.only and name != "shipped":
            continue
        outcome = evaluate(data, interest, keywords)
        describe(name, outcome, data)
        if shipped is None:
            shipped = outcome
            continue
        judge(name, shipped, outcome, data, draws)
        single_features(data, outcome)
        added_weights(data, interest, keywords)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
