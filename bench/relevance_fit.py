"""Fit the relevance models (digest/matching/relevance_model.py) on the fit sets, never the held-out ones.

    python bench/relevance_fit.py [--l2 1.0] [--dry-run] [--cross-validate] [--background N] [--without SET ...]
                                  [--with-worn]

For every reader of every set in bench/relevance/ whose role is "fit" (and "worn" with --with-worn),
the features of each paper
are computed through the engine's own code (BatchIndex, keyword_features, meaning_scores); papers
labelled relevant are positives, "not" negatives, borderline ones are left out. Each model is an
L2-regularised logistic regression (Newton's method, numpy), and its cut-off is chosen for
precision: the lowest probability at which the fit data reach the issue's precision goal (0.85 for
a description alone, 0.90 with keywords), else the one with the best F0.5. The result is
written to digest/matching/relevance_model.json; then `python bench/relevance.py` reports the
held-out sets and `--write-guard` records the fit sets' new figures.

--cross-validate also prints how the features generalise without looking at any held-out set:
leave one reader out (fit weights and cut-off on the other fit-set readers, predict the one left
out; micro-averaged), and fit on one fit set, predict the other. Features are chosen on these.

--background N indexes every fit set as a matching run does, beside N unlabelled papers of the fit
sets' captures (bench/relevance.py's background_papers: never a labelled paper), so the weights are
fitted and cross-validated in the conditions a run works in (issue 14). Without it, sets are
indexed alone.

--with-worn also fits on the worn sets: held out until their figures were published, fitted on
since (bench/relevance/ROUND17-RULE.md). Held-out sets are never loaded, with or without it.

--without SET leaves a fit set out of the fit (and the cross-validation) without changing the
background, which every labelled set shapes: how a set's value is judged before it is fitted on,
and how the stored weights are reproduced when a fit set was kept for later rounds but not fitted
on (the stored file's "command" says which).
"""

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()  # before numpy loads: config.celery sets BLAS to one thread, as in a worker

import numpy as np  # noqa: E402

from bench.relevance import FIT, WORN, Reader, background_papers, load_sets  # noqa: E402
from digest.matching import relevance_model  # noqa: E402
from digest.matching.engine import BatchIndex, keyword_features, keyword_text  # noqa: E402
from digest.matching.similarity import wanted_text  # noqa: E402
from subscribers.keywords import KeywordQuery, parse_keywords  # noqa: E402

CUTS = np.round(np.arange(0.2, 0.96, 0.05), 2)
# Issue 14's goals: each model's cut-off is the lowest with at least this precision on the fit data.
TARGET_PRECISION = {"description": 0.85, "both": 0.90}
# With keywords, the description model also picks papers at the cut-off reaching this precision.
# Chosen on the fit sets by leaving one reader out, among 0.90, 0.925 and 0.95 (the best both-mode
# recall with precision at least 0.88; docs/decisions.md "Relevance, eighth round"): at 0.95 a fit
# precision of 0.949 at one cut sent the cut-off from 0.55 to 0.70.
CONFIDENT_PRECISION = 0.925
VETOED = "vetoed"  # a column of examples(), not a feature
BETA = 0.5  # when no cut-off reaches the target: the best F0.5 (precision counts twice)

# More features of a reader's papers, beside the shipped ones: (index, reader, keywords) -> name -> per paper.
ExtraFeatures = Callable[[BatchIndex, Reader, KeywordQuery], dict[str, np.ndarray]]


def examples(
    background: list[str] | None = None,
    without: Sequence[str] = (),
    sets: Sequence[str] = (),
    index_class: type[BatchIndex] = BatchIndex,
    extra: ExtraFeatures | None = None,
    roles: Sequence[str] = (FIT,),
) -> tuple[dict[str, list[np.ndarray]], list[int], list[bool], list[str], list[str]]:
    """Feature rows of every (reader, labelled paper) pair of the sets of these roles (the fit sets;
    held-out ones are never loaded) but those named in `without`, their labels, whether the reader
    has keywords, the reader ("set/name") of each row, and the sets used; each set is indexed beside
    the `background` texts, as a run indexes its papers. `sets`: load only the sets so named (else
    every set of these roles); `index_class` and `extra`: a bench's variant of the index, and its
    candidate features."""
    columns: dict[str, list[np.ndarray]] = {}
    labels: list[int] = []
    with_keywords: list[bool] = []
    reader_of: list[str] = []
    used = []
    for labelled in load_sets(sets, roles=roles):
        if labelled.name in without:
            continue
        used.append(labelled.name)
        index = index_class(labelled.papers, background=background or [])
        for reader in labelled.readers:
            if not reader.interest:
                continue
            query = parse_keywords(reader.keywords)
            # The interest's features as the engine computes them (match_many), and the keywords' own.
            features = keyword_features(query, index)
            # Not a feature: a `-term` vetoes the paper in a run, so cross-validation drops it too.
            features[VETOED] = np.zeros(index.size)
            for positions in index.excluded(query):
                features[VETOED][positions] = 1.0
            for name, scores in index.interest_meaning([wanted_text(reader.interest)]).items():
                features[name] = scores[0]
            for name, scores in index.similarity.meaning_scores([keyword_text(query)])._asdict().items():
                features[f"keywords_{name}"] = scores[0]
            if extra is not None:
                features.update(extra(index, reader, query))
            judged = [(paper, label) for paper, label in reader.labels.items() if label != "borderline"]
            papers = np.array([paper for paper, _ in judged], dtype=np.int64)
            for name, values in features.items():
                columns.setdefault(name, []).append(np.asarray(values)[papers])
            labels += [1 if label == "relevant" else 0 for _, label in judged]
            with_keywords += [bool(query.include)] * len(judged)
            reader_of += [f"{labelled.name}/{reader.name}"] * len(judged)
    return columns, labels, with_keywords, reader_of, used


def fit(features: np.ndarray, labels: np.ndarray, l2: float) -> np.ndarray:
    """Intercept and weights of an L2-regularised logistic regression (intercept not penalised)."""
    design = np.hstack([np.ones((len(features), 1)), features])
    weights = np.zeros(design.shape[1])
    penalty = l2 * np.diag([0.0] + [1.0] * features.shape[1])
    for _ in range(100):
        probability = 1 / (1 + np.exp(-design @ weights))
        gradient = design.T @ (probability - labels) + penalty @ weights
        hessian = (design * (probability * (1 - probability))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    return weights


def best_cut(probability: np.ndarray, labels: np.ndarray, target: float) -> tuple[float, float, float]:
    """The lowest cut-off whose precision on the fit data reaches the target (the most recall at that
    precision), else the one with the best F0.5; with its precision and recall."""
    found = []
    for cut in CUTS:
        predicted = probability >= cut
        hits = float((predicted & (labels == 1)).sum())
        precision = hits / predicted.sum() if predicted.sum() else 1.0
        recall = hits / (labels == 1).sum()
        score = (1 + BETA**2) * precision * recall / (BETA**2 * precision + recall) if hits else 0.0
        found.append((score, float(cut), precision, recall))
    reaching = [(cut, precision, recall) for _, cut, precision, recall in found if precision >= target]
    if reaching:
        return min(reaching)
    _, cut, precision, recall = max(found)
    return cut, precision, recall


def probability_of(weights: np.ndarray, features: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(weights[0] + features @ weights[1:])))


Predictor = Callable[[np.ndarray], np.ndarray]


def predictor(features: np.ndarray, labels: np.ndarray, target: float, l2: float) -> Predictor:
    """train mask -> whether each row outside it is predicted relevant, by weights and a cut-off
    fitted on the rows inside it."""

    def predicted_apart(train: np.ndarray) -> np.ndarray:
        weights = fit(features[train], labels[train], l2)
        cut, _, _ = best_cut(probability_of(weights, features[train]), labels[train], target)
        return probability_of(weights, features[~train]) >= cut

    return predicted_apart


# (features, labels, target precision, L2) -> Predictor: `predictor`, or a bench's variant of the fit.
PredictorMaker = Callable[[np.ndarray, np.ndarray, float, float], Predictor]


def either(first: Predictor, second: Predictor) -> Predictor:
    return lambda train: first(train) | second(train)


def unless(predict: Predictor, vetoed: np.ndarray) -> Predictor:
    """What a run picks: the prediction, less the papers a `-term` vetoes."""
    return lambda train: predict(train) & ~vetoed[~train]


def run_predictors(
    description: np.ndarray,
    both: np.ndarray,
    labels: np.ndarray,
    vetoed: np.ndarray,
    l2: float,
    make: PredictorMaker = predictor,
) -> tuple[Predictor, Predictor]:
    """Over the rows of readers with keywords, given each model's features: the joint model alone and
    what a run picks (the joint model's papers and those the description is confident of), each less
    the papers a `-term` vetoes; each model fitted by `make`."""
    joint = unless(make(both, labels, TARGET_PRECISION["both"], l2), vetoed)
    sure = make(description, labels, CONFIDENT_PRECISION, l2)
    return joint, unless(either(joint, sure), vetoed)


def _precision_recall(predicted: np.ndarray, labels: np.ndarray) -> str:
    hits = int((predicted & (labels == 1)).sum())
    return f"P {hits / max(int(predicted.sum()), 1):.2f} R {hits / max(int(labels.sum()), 1):.2f}"


def set_of(readers: np.ndarray) -> np.ndarray:
    """The set of each row's reader ("set/name")."""
    return np.array([reader.split("/")[0] for reader in readers])


def leave_one_reader_out(
    predict: Callable[[np.ndarray], np.ndarray], readers: np.ndarray, dtype: type = bool
) -> np.ndarray:
    """Each row predicted (picked, or with dtype float a probability) by weights and a cut-off fitted
    on the other readers' rows."""
    predicted = np.zeros(len(readers), dtype=dtype)
    for reader in np.unique(readers):
        apart = readers == reader
        predicted[apart] = predict(~apart)
    return predicted


def from_the_others(predict: Predictor, readers: np.ndarray) -> dict[str, np.ndarray]:
    """Set name -> its rows predicted by weights and a cut-off fitted on the other sets' rows."""
    sets = set_of(readers)
    return {str(name): predict(sets != name) for name in np.unique(sets)}


def cross_validate(predict: Predictor, labels: np.ndarray, readers: np.ndarray) -> str:
    """Leave-one-reader-out figures (overall and per set), then each fit set predicted from the others."""
    predicted = leave_one_reader_out(predict, readers)
    sets = set_of(readers)
    parts = [f"leave one reader out: {_precision_recall(predicted, labels)}"]
    parts += [f"{name} {_precision_recall(predicted[sets == name], labels[sets == name])}" for name in np.unique(sets)]
    if len(np.unique(sets)) > 1:
        for name, apart in from_the_others(predict, readers).items():
            parts.append(f"{name} from the others: " + _precision_recall(apart, labels[sets == name]))
    return "; ".join(parts)


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--l2", type=float, default=1.0, help="L2 penalty on the weights")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write the weights")
    parser.add_argument("--cross-validate", action="store_true", help="also print cross-validated figures")
    parser.add_argument(
        "--background", type=int, default=0, help="index each fit set beside this many unlabelled papers"
    )
    parser.add_argument(
        "--with-worn", action="store_true", help="also fit on the worn sets (held out once, published since)"
    )
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="SET",
        help="leave this fit set out (repeatable); the background stays the same",
    )
    return parser.parse_args(argv)


def fitted_models(args: argparse.Namespace, report: Callable[[str], object] = print) -> dict:
    """What digest/matching/relevance_model.json stores for these arguments: both models' weights and
    cut-offs, the sets fitted on and the command that reproduces them."""
    background = background_papers(args.background) if args.background else []
    roles = (FIT, WORN) if args.with_worn else (FIT,)
    columns, label_list, keyword_list, reader_list, used = examples(background, args.without, roles=roles)
    labels, with_keywords, readers = np.array(label_list), np.array(keyword_list), np.array(reader_list)
    vetoed = np.concatenate(columns[VETOED]) > 0
    report(f"fit on: {', '.join(used)} (held-out sets are never read here)")
    if background:
        report(f"each fit set indexed beside {len(background)} unlabelled papers of the fit sets' captures")
    models = {}
    design = {
        "description": design_of(columns, relevance_model.DESCRIPTION_FEATURES),
        "both": design_of(columns, relevance_model.BOTH_FEATURES),
    }
    for name, rows in (("description", np.ones(len(labels), dtype=bool)), ("both", with_keywords)):
        names = relevance_model.DESCRIPTION_FEATURES if name == "description" else relevance_model.BOTH_FEATURES
        features = design[name][rows]
        weights = fit(features, labels[rows], args.l2)
        probability = probability_of(weights, features)
        cut, precision, recall = best_cut(probability, labels[rows], TARGET_PRECISION[name])
        models[name] = {
            "features": list(names),
            "weights": [round(float(w), 4) for w in weights[1:]],
            "intercept": round(float(weights[0]), 4),
            "cut": cut,
        }
        report(
            f"{name}: {len(features)} examples, weights "
            + ", ".join(f"{n}={w:.2f}" for n, w in zip(names, weights[1:], strict=True))
            + f", intercept={weights[0]:.2f}; cut {cut:.2f}: fit precision {precision:.2f} recall {recall:.2f}"
        )
        predict = predictor(features, labels[rows], TARGET_PRECISION[name], args.l2)
        if name == "description":
            confident, precision, recall = best_cut(probability, labels[rows], CONFIDENT_PRECISION)
            models[name]["confident_cut"] = confident
            report(f"  confident cut {confident:.2f}: fit precision {precision:.2f} recall {recall:.2f}")
        else:
            # As the engine does: the joint model's papers and those the description is confident of.
            joint, predict = run_predictors(design["description"][rows], features, labels[rows], vetoed[rows], args.l2)
            if args.cross_validate:
                report(f"  joint model alone, cross-validated, {cross_validate(joint, labels[rows], readers[rows])}")
        if args.cross_validate:
            report(f"  {name} cross-validated, {cross_validate(predict, labels[rows], readers[rows])}")
    return {"fitted_on": used, "command": command_of(args), "l2": args.l2, "models": models}


def design_of(columns: dict[str, list[np.ndarray]], names: Sequence[str]) -> np.ndarray:
    """The rows x features matrix of these features of examples()'s columns."""
    return np.vstack([np.concatenate(columns[feature]) for feature in names]).T


def command_of(args: argparse.Namespace) -> str:
    """The command line that fits what these arguments fit (stored beside the weights)."""
    command = "python bench/relevance_fit.py" + (f" --background {args.background}" if args.background else "")
    command += " --with-worn" if args.with_worn else ""
    command += "".join(f" --without {name}" for name in args.without)
    return command + (f" --l2 {args.l2}" if args.l2 != 1.0 else "")


def main() -> None:
    args = parse_arguments()
    stored = fitted_models(args)
    if not args.dry_run:
        relevance_model.WEIGHTS_FILE.write_text(json.dumps(stored, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {relevance_model.WEIGHTS_FILE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
