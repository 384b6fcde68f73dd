"""Matching quality on the 62 seed papers: precision and recall per imagined subscriber.

    python bench/relevance.py [--threshold 0.12]

Each subscriber of bench/relevance_labels.json is matched three ways: keywords only, free-text
interests only, and both, through the same code as a matching run (digest.matching.engine). A paper is
predicted when it becomes a candidate (relevance >= RANKING_MIN_RELEVANCE). Papers labelled
borderline count neither way. Overall figures are micro-averaged over all subscribers.
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from digest.matching.engine import BatchIndex, PaperDoc, build_matcher, match_many  # noqa: E402
from seeds.build_seed_feed import read_papers  # noqa: E402

LABELS = Path(__file__).with_name("relevance_labels.json")
SEED_PAGE = ROOT / "seeds" / "trending-papers-page.txt"
MODES = ("keywords", "description", "both")


def seed_papers() -> list[PaperDoc]:
    pairs, _ = read_papers(SEED_PAGE.read_text(encoding="utf-8"))
    return [PaperDoc(id=number, title=title, abstract=abstract) for number, (title, abstract) in enumerate(pairs, 1)]


def matcher_for(subscriber: dict, mode: str):
    return build_matcher(
        keywords=subscriber["keywords"] if mode in ("keywords", "both") else "",
        interests=subscriber["interests"] if mode in ("description", "both") else "",
    )


def evaluate(threshold: float | None = None) -> dict[str, dict[str, tuple[int, int, int]]]:
    """subscriber name -> mode -> (true positives, predicted, wanted), borderline papers left out."""
    papers = seed_papers()
    titles = {paper.id: paper.title for paper in papers}
    index = BatchIndex(papers, similarity_threshold=threshold)
    labels = json.loads(LABELS.read_text(encoding="utf-8"))["subscribers"]
    known = set(titles.values())
    figures: dict[str, dict[str, tuple[int, int, int]]] = {}
    for subscriber in labels:
        wanted, borderline = set(subscriber["wanted"]), set(subscriber.get("borderline", ()))
        unknown = (wanted | borderline) - known
        if unknown:
            raise SystemExit(f"{subscriber['name']}: titles not among the seeds: {sorted(unknown)}")
        figures[subscriber["name"]] = {}
        for mode in MODES:
            [matches] = match_many([matcher_for(subscriber, mode)], index, keep=len(papers))
            predicted = {titles[match.paper_id] for match in matches} - borderline
            figures[subscriber["name"]][mode] = (len(predicted & wanted), len(predicted), len(wanted))
    return figures


def ratio(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=None, help="similarity threshold (default: the setting)")
    args = parser.parse_args()
    figures = evaluate(args.threshold)
    print(f"{'subscriber':28}" + "".join(f"{mode + ' P/R':>22}" for mode in MODES))
    totals = {mode: [0, 0, 0] for mode in MODES}
    for name, by_mode in figures.items():
        cells = []
        for mode in MODES:
            hits, predicted, wanted = by_mode[mode]
            for slot, value in enumerate((hits, predicted, wanted)):
                totals[mode][slot] += value
            cells.append(f"{ratio(hits, predicted):.2f}/{ratio(hits, wanted):.2f} ({hits}/{predicted}/{wanted})")
        print(f"{name:28}" + "".join(f"{cell:>22}" for cell in cells))
    overall = {mode: (ratio(t[0], t[1]), ratio(t[0], t[2])) for mode, t in totals.items()}
    print(f"{'overall':28}" + "".join(f"{p:.2f}/{r:.2f}".rjust(22) for p, r in overall.values()))
    print(" ".join(f"{mode}_precision={p:.2f} {mode}_recall={r:.2f}" for mode, (p, r) in overall.items()))


if __name__ == "__main__":
    main()
