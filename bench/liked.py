"""What a liked-papers list does to matching quality, on the labelled sets of bench/relevance/.

    python bench/liked.py [--pairs 5] [--tune] [--sets feeds-a,feeds-b,feeds-c]

A simulated reader of each labelled set keeps their keywords and free-text interest ("both" mode of
bench/relevance.py) and adds two papers they were labelled as wanting to their liked list; the
figures compare the same reader before and after, through the same code as a matching run
(digest.matching.engine, with the hook of digest.matching.liked). Each reader is tried with
--pairs different pairs of wanted papers (a seeded draw); the two liked papers are left out of the
scoring, and so are papers labelled borderline. Figures are micro-averaged over readers and pairs.

feeds-a is the fit set (the constants of digest/matching/liked.py were chosen on it by F1, `--tune`
prints the grid); feeds-b and feeds-c are held out and reported as such. Besides precision, recall and F1 of the
candidates, P@10 is the precision of the first ten by score: the papers a default digest shows.
Paper text is read from the captures in ../shared/feeds/ through the project's own feed parser.
`--sets` names the sets run (only those are loaded). The last line is machine-readable.
"""

import argparse
import itertools
import json
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from bench.environment import patched  # noqa: E402
from bench.relevance import SETS, source_papers  # noqa: E402
from digest.matching import liked  # noqa: E402
from digest.matching.engine import BatchIndex, Matcher, PaperDoc, build_matcher, match_many  # noqa: E402
from digest.matching.similarity import paper_text  # noqa: E402

MODES = ("before", "after", "liked only")
HELD_OUT_SETS = ("feeds-b", "feeds-c")
# Papers in a digest (the default max papers): the ones a reader sees, best score first.
DIGEST_SIZE = 10


def load_set(name: str) -> tuple[dict, list[PaperDoc], dict[str, int]]:
    labelled = json.loads((SETS / f"{name}.json").read_text(encoding="utf-8"))
    papers, position = [], {}
    for number, entry in enumerate(labelled["papers"], 1):
        found = source_papers(entry["source"]).get(entry["id"])
        if found is None:
            raise SystemExit(f"{name}: {entry['id']} is not in ../shared/feeds/{entry['source']}")
        if entry["id"] in position:
            continue
        papers.append(PaperDoc(id=number, title=found[0], abstract=found[1]))
        position[entry["id"]] = number
    return labelled, papers, position


def liked_pairs(wanted: list[str], pairs: int, seed: str) -> list[tuple[str, str]]:
    every = list(itertools.combinations(sorted(wanted), 2))
    random.Random(seed).shuffle(every)
    return every[:pairs]


CONSTANTS = ("LIKED_SIMILAR", "TYPICAL_WEIGHT", "UNLIKE_FACTOR")


def constants(**values: float):
    """digest/matching/liked.py's constants set to `values` (LIKED_FULL follows at twice LIKED_SIMILAR)."""
    full = 2 * values.get("LIKED_SIMILAR", liked.LIKED_SIMILAR)
    return patched(liked, **values, LIKED_FULL=full)


def evaluate_readers(name: str, pairs: int) -> dict[str, dict[str, list[int]]]:
    """reader -> mode -> [true positives, predicted, wanted, wanted in the digest's first DIGEST_SIZE,
    shown], summed over the reader's liked pairs."""
    labelled, papers, position = load_set(name)
    index = BatchIndex(papers)
    text = {paper.id: paper_text(paper.title, paper.abstract) for paper in papers}
    by_reader = {}
    for reader in labelled["readers"]:
        totals = by_reader[reader["name"]] = {mode: [0, 0, 0, 0, 0] for mode in MODES}
        labels = reader["labels"]
        wanted_ids = [arxiv_id for arxiv_id, label in labels.items() if label == "relevant"]
        borderline = {position[arxiv_id] for arxiv_id, label in labels.items() if label == "borderline"}
        base = build_matcher(keywords=reader["keywords"], interests=reader["interest"])
        for pair in liked_pairs(wanted_ids, pairs, f"{name}/{reader['name']}"):
            chosen = {position[arxiv_id] for arxiv_id in pair}
            texts = tuple(text[number] for number in sorted(chosen))
            wanted = {position[arxiv_id] for arxiv_id in wanted_ids} - chosen
            matchers = {
                "before": base,
                "after": Matcher(**{**vars(base), "liked": texts}),
                "liked only": Matcher(liked=texts),
            }
            for mode, found in zip(MODES, match_many(list(matchers.values()), index, keep=len(papers)), strict=True):
                predicted = set(found.paper_ids) - borderline - chosen
                shown = [number for number in found.paper_ids if number not in chosen][:DIGEST_SIZE]
                shown = [number for number in shown if number not in borderline]
                counts = (len(predicted & wanted), len(predicted), len(wanted), len(wanted & set(shown)), len(shown))
                for slot, value in enumerate(counts):
                    totals[mode][slot] += value
    return by_reader


def summed(by_reader: dict[str, dict[str, list[int]]]) -> dict[str, list[int]]:
    """mode -> the readers' counts added up."""
    return {
        mode: [sum(values) for values in zip(*(counts[mode] for counts in by_reader.values()), strict=True)]
        for mode in MODES
    }


def evaluate(name: str, pairs: int) -> dict[str, list[int]]:
    """mode -> [true positives, predicted, wanted, wanted in the digest's first DIGEST_SIZE, shown],
    summed over readers and liked pairs."""
    return summed(evaluate_readers(name, pairs))


def ratio(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def figures(totals: list[int]) -> tuple[float, float, float, float]:
    """Precision, recall, F1 of the candidates, and precision of the digest's first DIGEST_SIZE."""
    precision, recall = ratio(totals[0], totals[1]), ratio(totals[0], totals[2])
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, ratio(totals[3], totals[4])


def tune(pairs: int) -> None:
    """The grid on feeds-a (fit), best F1 of "after" first; feeds-b is never looked at here."""
    rows = []
    grid = itertools.product((0.04, 0.06, 0.08, 0.1, 0.12, 0.15), (0.0, 0.5, 1.0, 2.0), (0.2, 0.3, 0.5, 1.0))
    for similar, typical, unlike in grid:
        with constants(LIKED_SIMILAR=similar, TYPICAL_WEIGHT=typical, UNLIKE_FACTOR=unlike):
            rows.append((figures(evaluate("feeds-a", pairs)["after"]), (similar, typical, unlike)))
    rows.sort(key=lambda row: -row[0][2])
    print("feeds-a (fit) grid, best F1 first: similar typical_weight unlike_factor -> P R F1 P@10")
    for (precision, recall, f1, digest), (similar, typical, unlike) in rows[:12]:
        print(f"  {similar:.2f} {typical:.1f} {unlike:.1f} -> {precision:.3f} {recall:.3f} {f1:.3f} {digest:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5, help="pairs of liked papers tried per reader")
    parser.add_argument("--tune", action="store_true", help="print the cut-off grid on feeds-a first")
    parser.add_argument(
        "--sets",
        default=",".join(("feeds-a", *HELD_OUT_SETS)),
        help="comma-separated labelled sets to run (default: %(default)s); no other set is loaded",
    )
    args = parser.parse_args()
    if args.tune:
        tune(args.pairs)
    print(
        f"liked.py: similar={liked.LIKED_SIMILAR} full={liked.LIKED_FULL} max={liked.LIKED_MAX} "
        f"typical_weight={liked.TYPICAL_WEIGHT} unlike_factor={liked.UNLIKE_FACTOR}; "
        f"{args.pairs} liked pairs per reader"
    )
    print(f"{'set':20}" + "".join(f"{mode + ' P / R / F1 / P@10':>32}" for mode in MODES))
    last = []
    for name in args.sets.split(","):
        role = load_set(name)[0]["role"]
        totals = evaluate(name, args.pairs)
        cells = [figures(totals[mode]) for mode in MODES]
        row = "".join(f"{p:.2f} / {r:.2f} / {f:.2f} / {d:.2f}".rjust(32) for p, r, f, d in cells)
        print(f"{name + ' (' + role + ')':20}" + row)
        (before_p, before_r, _, before_d), (after_p, after_r, _, after_d) = cells[0], cells[1]
        last.append(
            f"set={name} before_precision={before_p:.2f} before_recall={before_r:.2f} before_p10={before_d:.2f} "
            f"after_precision={after_p:.2f} after_recall={after_r:.2f} after_p10={after_d:.2f}"
        )
    print(" ".join(last))


if __name__ == "__main__":
    main()
