"""What "more like this" / "less like this" clicks do to matching quality, on the labelled sets.

    python bench/clicks.py [--tune] [--sets seeds,feeds-a,...]

Each reader of each labelled set (bench/relevance/) becomes a subscriber with their keywords and
free-text interest (the "both" mode of bench/relevance.py) in a temporary SQLite database holding
the set's papers. Their matches, best first, are the "before". Then the reader clicks through the
same code as the digest's links (digest.matching.feedback.apply_feedback, which writes the keyword,
records the click and retrains the reader's own model): "more like this" on the first two papers
of their ranking labelled relevant, "less like this" on the first two labelled not relevant (a
rule fixed before any figure was seen; a reader with fewer such papers clicks fewer). They are
matched again through the matching run's own path (digest.matching.runs.subscriber_matcher).

Figures are over the REMAINING papers (the clicked ones and the borderline ones left out),
micro-averaged over readers: precision, recall, F1 of the matches, and P@10, the precision of the
first ten by score (what a default digest shows). Three columns: before; after with what the
clicks wrote into the keywords only (a "less" click's ~word; the reader's model switched off); after with both (the
product). Fit sets (seeds, feeds-a) and the held-out feeds-b are printed separately; the
constants of digest/matching/reader_model.py were chosen on the fit sets (`--tune` prints the
grid; it never reads feeds-b). `--sets` loads only the sets named (e.g. the fit sets: seeds,feeds-a,
feeds-e,feeds-f,feeds-i). The last line is machine-readable.
"""

import argparse
import itertools
import os
import sys
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# A database of its own, thrown away at the end: the bench never touches the project's.
DATABASE_DIR = tempfile.TemporaryDirectory(prefix="paperboy-clicks-")
os.environ["DATABASE_URL"] = f"sqlite:///{DATABASE_DIR.name}/clicks.sqlite3"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from bench.environment import patched  # noqa: E402
from bench.relevance import FIT, HELD_OUT, LabelledSet, Reader, load_sets  # noqa: E402
from digest.matching import reader_model  # noqa: E402
from digest.matching.engine import BatchIndex, Matcher, match_many  # noqa: E402
from digest.matching.feedback import LESS, MORE, apply_feedback  # noqa: E402
from digest.matching.liked import LIKED_PREFETCH  # noqa: E402
from digest.matching.runs import subscriber_matcher  # noqa: E402
from digest.matching.vectors import store_paper_vectors  # noqa: E402
from digest.models import Paper  # noqa: E402
from subscribers.models import Subscriber  # noqa: E402

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
CLICKS_EACH_WAY = 2
DIGEST_SIZE = 10
MODES = ("before", "after, keywords only", "after")
TUNED = ("PICK", "UNLIKE_BELOW", "UNLIKE_FACTOR", "L2")


@dataclass
class Clicked:
    """One reader after their clicks: what to leave out of the scoring, and their matchers."""

    reader: Reader
    left_out: set[int]  # paper ids: clicked or borderline
    wanted: set[int]  # paper ids labelled relevant, not clicked
    matchers: dict[str, Matcher]


def _subscriber(pk: int) -> Subscriber:
    return Subscriber.objects.select_related("reader_model").prefetch_related("topics", LIKED_PREFETCH).get(pk=pk)


def click_through(labelled: LabelledSet) -> tuple[BatchIndex, list[Clicked]]:
    """The set's papers stored, each reader subscribed, matched, and clicking as the docstring says."""
    Subscriber.objects.all().delete()
    Paper.objects.all().delete()
    stored = Paper.objects.bulk_create(
        Paper(guid=f"{labelled.name}-{doc.id}", title=doc.title, abstract=doc.abstract, authors=list(doc.authors))
        for doc in labelled.papers
    )
    # Their vectors stored, as ingestion stores them: a click's retraining reads its background so.
    store_paper_vectors([row.pk for row in stored])
    paper_id = {doc.id: row.pk for doc, row in zip(labelled.papers, stored, strict=True)}
    papers = {row.pk: row for row in stored}
    index = BatchIndex(
        [replace(doc, id=paper_id[doc.id]) for doc in labelled.papers], now=NOW, similarity_threshold=None
    )
    clicked = []
    for reader in labelled.readers:
        labels = {paper_id[position]: label for position, label in reader.labels.items()}
        subscriber = Subscriber.objects.create(
            email=f"{reader.name}@bench.invalid",
            keywords=reader.keywords,
            interests=reader.interest,
            status=Subscriber.Status.ACTIVE,
        )
        before = subscriber_matcher(_subscriber(subscriber.pk))
        ranking = match_many([before], index, keep=index.size)[0].paper_ids
        more = [pk for pk in ranking if labels.get(pk) == "relevant"][:CLICKS_EACH_WAY]
        less = [pk for pk in ranking if labels.get(pk, "not") == "not"][:CLICKS_EACH_WAY]
        for direction, chosen in ((MORE, more), (LESS, less)):
            for pk in chosen:
                apply_feedback(subscriber, papers[pk], direction)
        after = subscriber_matcher(_subscriber(subscriber.pk))
        clicks = set(more) | set(less)
        clicked.append(
            Clicked(
                reader=reader,
                left_out=clicks | {pk for pk, label in labels.items() if label == "borderline"},
                wanted={pk for pk, label in labels.items() if label == "relevant"} - clicks,
                matchers={"before": before, "after, keywords only": replace(after, reader=None), "after": after},
            )
        )
    return index, clicked


def count_readers(index: BatchIndex, clicked: list[Clicked]) -> list[dict[str, list[int]]]:
    """Per reader, mode -> [true positives, predicted, wanted, wanted among the first DIGEST_SIZE
    shown, shown]."""
    by_reader = []
    for reader in clicked:
        totals = {}
        found = match_many([reader.matchers[mode] for mode in MODES], index, keep=index.size)
        for mode, matches in zip(MODES, found, strict=True):
            kept = [pk for pk in matches.paper_ids if pk not in reader.left_out]
            shown = kept[:DIGEST_SIZE]
            counts = (len(set(kept) & reader.wanted), len(kept), len(reader.wanted), len(set(shown) & reader.wanted))
            totals[mode] = [*counts, len(shown)]
        by_reader.append(totals)
    return by_reader


def count(index: BatchIndex, clicked: list[Clicked]) -> dict[str, list[int]]:
    """mode -> [true positives, predicted, wanted, wanted among the first DIGEST_SIZE shown, shown]."""
    return summed(count_readers(index, clicked))


def f_half(precision: float, recall: float) -> float:
    """F0.5: precision weighs twice recall, as for the interest models' cut-offs (relevance_model.py)."""
    return 1.25 * precision * recall / (0.25 * precision + recall) if precision + recall else 0.0


def figures(totals: list[int]) -> tuple[float, float, float, float]:
    def ratio(part: int, whole: int) -> float:
        return part / whole if whole else 1.0

    precision, recall = ratio(totals[0], totals[1]), ratio(totals[0], totals[2])
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, ratio(totals[3], totals[4])


def summed(parts: list[dict[str, list[int]]]) -> dict[str, list[int]]:
    return {mode: [sum(values) for values in zip(*(part[mode] for part in parts), strict=True)] for mode in MODES}


def tune(fit_sets: list[LabelledSet]) -> None:
    """The grid on the fit sets pooled, best F0.5 of "after" first; feeds-b is never read here."""
    rows = []
    for l2, words in itertools.product((0.01, 0.1), (False, True)):
        with patched(reader_model, L2=l2, WORDS_AS_POSITIVE=words):
            clicked = [click_through(labelled) for labelled in fit_sets]
        grid = itertools.product((2.0, 3.0, 4.0, 5.0, 6.0), (0.3, 0.4, 0.5), (-1.0, 0.0), (0.5, 1.0))
        for pick, relevance, below, factor in grid:
            values = {"PICK": pick, "PICK_RELEVANCE": relevance, "UNLIKE_BELOW": below, "UNLIKE_FACTOR": factor}
            with patched(reader_model, **values):
                totals = summed([count(index, readers) for index, readers in clicked])
            rows.append((figures(totals["after"]), (pick, relevance, below, factor, l2, words)))
        if l2 == 0.01:
            before = figures(totals["before"])
    rows.sort(key=lambda row: -f_half(row[0][0], row[0][1]))
    print(f"fit sets pooled, before the clicks: P {before[0]:.3f} R {before[1]:.3f} F0.5 {f_half(*before[:2]):.3f}")
    print("best F0.5 first: pick pick_relevance unlike_below unlike_factor l2 words -> P R F1 P@10 F0.5")
    for (precision, recall, f1, digest), (pick, relevance, below, factor, l2, words) in rows[:16]:
        print(
            f"  {pick:.1f} {relevance:.1f} {below:.1f} {factor:.1f} {l2:.2f} {words:d} -> "
            f"{precision:.3f} {recall:.3f} {f1:.3f} {digest:.3f} {f_half(precision, recall):.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tune", action="store_true", help="print the constants' grid on the fit sets first")
    parser.add_argument(
        "--sets", default="", help="comma-separated labelled sets to run, no other loaded (default: every set)"
    )
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    sets = load_sets(name for name in args.sets.split(",") if name)
    if args.tune:
        tune([labelled for labelled in sets if labelled.role == FIT])
    print(
        f"reader_model.py: pick={reader_model.PICK} pick_relevance={reader_model.PICK_RELEVANCE} "
        f"step={reader_model.PICK_STEP} max={reader_model.MODEL_MAX} "
        f"unlike_below={reader_model.UNLIKE_BELOW} unlike_factor={reader_model.UNLIKE_FACTOR} "
        f"l2={reader_model.L2} min_examples={reader_model.MIN_EXAMPLES}; {CLICKS_EACH_WAY} clicks each way per reader"
    )
    print(f"{'set':22}" + "".join(f"{mode + ' P / R / F1 / P@10':>40}" for mode in MODES))
    last = []
    fit_parts = []
    for labelled in sorted(sets, key=lambda labelled: (labelled.role == HELD_OUT, labelled.name)):
        totals = count(*click_through(labelled))
        rows = [(f"{labelled.name} ({labelled.role})", totals)]
        if labelled.role == FIT:
            fit_parts.append(totals)
            if len(fit_parts) == sum(other.role == FIT for other in sets):
                rows.append(("fit sets pooled", summed(fit_parts)))
        for name, counted in rows:
            cells = [figures(counted[mode]) for mode in MODES]
            print(f"{name:22}" + "".join(f"{p:.2f} / {r:.2f} / {f:.2f} / {d:.2f}".rjust(40) for p, r, f, d in cells))
        (before_p, before_r, _, before_d), _, (after_p, after_r, _, after_d) = (figures(totals[mode]) for mode in MODES)
        last.append(
            f"set={labelled.name} role={labelled.role} before_precision={before_p:.2f} before_recall={before_r:.2f} "
            f"before_p10={before_d:.2f} after_precision={after_p:.2f} after_recall={after_r:.2f} "
            f"after_p10={after_d:.2f}"
        )
    print(" ".join(last))


if __name__ == "__main__":
    main()
