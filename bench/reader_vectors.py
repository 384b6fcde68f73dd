"""Sentence vectors in the liked papers' signal: TF-IDF rows (today) against (A) the papers' sentence
vectors and (B) both, on the simulated readers of bench/liked.py.

    python bench/reader_vectors.py [--pairs 5] [--sets seeds,feeds-a,feeds-e,feeds-f,feeds-i]

The rule, the candidates and how their constants are set were written before any figure
(bench/relevance/LIKEDVEC-RULE.md). "terms" is the shipped code itself; (A) and (B) replace the liked
papers' signal (digest/matching/liked.py's Rocchio score over vectors, or the mean of that and
today's). Their thresholds are the score values passed by the same share of scores as today's 0.1
and 0.2, pooled over the sets: no label is read to set them. Only the sets named are loaded (by
default the fit sets).

The script also compared the click model of digest/matching/reader_model.py on TF-IDF terms with
(A) and (B) (bench/clicks.py's readers); (A) passed its held-out test (CLICKS-HELDOUT-RULE.md) and
replaced the terms, so that part is gone: it ran as committed in 8663abf, and bench/clicks.py
measures the shipped model.

Prints, per candidate, precision / recall / F1 / P@10 before and after liking, per set and pooled;
then the rule's figures: the micro-averaged change of the after-feedback precision and recall
against "terms", the bootstrap sd over readers of the precision change, the after-feedback F1 of
both, the change without the most-helped reader, and whether LIKEDVEC-RULE.md passes (and, as the
held-out reading printed it, the F1 form of the rule). `--vector-cache` keeps the encoded vectors in
a file (outside the repository) between runs. The last line is machine-readable.
"""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# bench.clicks sets up its own throwaway database, then Django (and one BLAS thread): it is imported first.
import bench.clicks as clicks  # noqa: E402, I001

import numpy as np  # noqa: E402

import bench.liked as liked_bench  # noqa: E402
from bench.environment import patched  # noqa: E402
from bench.relevance import FIT, load_sets  # noqa: E402
from bench.vector_cache import vector_cache  # noqa: E402
from digest.matching import embedding, engine, liked  # noqa: E402
from digest.matching.engine import BatchIndex  # noqa: E402
from digest.matching.liked import LikedScores  # noqa: E402
from digest.matching.similarity import PaperSimilarity, paper_text  # noqa: E402

FIT_SETS = ("seeds", "feeds-a", "feeds-e", "feeds-f", "feeds-i")
VARIANTS = ("terms", "vectors", "both")
DRAWS = 1000

# paper_text (how the models read a paper) -> embedding_text (how its vector is encoded).
EMBEDDING_TEXT: dict[str, str] = {}
INDEX_OF: dict[int, BatchIndex] = {}


class RegisteredIndex(BatchIndex):
    """A BatchIndex the patched liked signal can find from its similarity model."""

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        INDEX_OF[id(self.similarity)] = self
        for paper in self.papers:
            EMBEDDING_TEXT[paper_text(paper.title, paper.abstract)] = embedding.embedding_text(
                paper.title, paper.abstract
            )


def vectors_of(texts: Sequence[str]) -> np.ndarray:
    """Texts as the models read them -> their sentence vectors (a paper's as its vector is stored)."""
    return embedding.encode([EMBEDDING_TEXT.get(text, text) for text in texts])


# -- the liked papers' signal ---------------------------------------------------------------------


def per_liked(variant: str, texts: Sequence[str], similarity: PaperSimilarity) -> np.ndarray:
    """liked x papers: similarity to each liked paper minus TYPICAL_WEIGHT times the typical one."""
    terms = similarity.scores(list(texts)) - liked.TYPICAL_WEIGHT * similarity.typicality
    if variant == "terms":
        return terms
    papers = INDEX_OF[id(similarity)].paper_vectors
    typical = papers @ papers.mean(axis=0)
    vectors = vectors_of(texts) @ papers.T - liked.TYPICAL_WEIGHT * typical
    return vectors if variant == "vectors" else (terms + vectors) / 2


def liked_signal(variant: str, similar: float, full: float) -> Callable[..., LikedScores | None]:
    """liked.liked_scores over the variant's score, relevance from 0.4 at `similar` to LIKED_MAX at `full`."""

    def scores(texts: Sequence[str], similarity: PaperSimilarity, rows: object = None) -> LikedScores | None:
        if not texts or not similarity.paper_count:
            return None
        each = per_liked(variant, texts, similarity)
        score = each.mean(axis=0)
        chosen = score >= similar
        counts = np.where(chosen, (each >= similar).sum(axis=0), 0)
        low = liked.LIKED_MAX / 2
        rising = low + (liked.LIKED_MAX - low) * (score - similar) / (full - similar)
        relevance = np.where(chosen, np.minimum(liked.LIKED_MAX, rising), 0.0).astype(np.float32)
        evidence = []
        for count in np.unique(counts[chosen]).tolist():
            noun = "paper" if count == 1 else "papers"
            evidence.append((f"similar to {count} {noun} you liked", np.where(counts == count, relevance, 0.0)))
        return LikedScores(evidence=evidence, unlike=~chosen)

    return scores


def liked_thresholds(names: Sequence[str], pairs: int) -> dict[str, tuple[float, float]]:
    """Per variant, the scores passed by the same share of (reader, pair, paper) scores as today's
    LIKED_SIMILAR and LIKED_FULL pass: read from scores only, never from labels."""
    pooled: dict[str, list[np.ndarray]] = {variant: [] for variant in VARIANTS}
    for name in names:
        labelled, papers, position = liked_bench.load_set(name)
        index = RegisteredIndex(papers)
        text = {paper.id: paper_text(paper.title, paper.abstract) for paper in papers}
        for reader in labelled["readers"]:
            wanted = [arxiv_id for arxiv_id, label in reader["labels"].items() if label == "relevant"]
            for pair in liked_bench.liked_pairs(wanted, pairs, f"{name}/{reader['name']}"):
                texts = [text[number] for number in sorted(position[arxiv_id] for arxiv_id in pair)]
                for variant in VARIANTS:
                    pooled[variant].append(per_liked(variant, texts, index.similarity).mean(axis=0))
    terms = np.concatenate(pooled["terms"])
    shares = [float((terms >= liked.LIKED_SIMILAR).mean()), float((terms >= liked.LIKED_FULL).mean())]
    found = {}
    for variant in VARIANTS:
        scores = np.concatenate(pooled[variant])
        similar, full = (float(np.quantile(scores, 1 - share)) for share in shares)
        found[variant] = (liked.LIKED_SIMILAR, liked.LIKED_FULL) if variant == "terms" else (similar, full)
    print(f"liked: shares of scores passing today's thresholds {shares[0]:.4f}, {shares[1]:.4f}")
    return found


# -- running and the rule -------------------------------------------------------------------------


Counts = dict[str, dict[str, list[int]]]  # reader -> mode -> counts


def liked_counts(names: Sequence[str], pairs: int) -> dict[str, Counts]:
    thresholds = liked_thresholds(names, pairs)
    found: dict[str, Counts] = {}
    for variant in VARIANTS:
        similar, full = thresholds[variant]
        print(f"liked {variant}: similar={similar:.4f} full={full:.4f}")
        signal = liked.liked_scores if variant == "terms" else liked_signal(variant, similar, full)
        found[variant] = {}
        with patched(engine, liked_scores=signal):
            for name in names:
                for reader, counts in liked_bench.evaluate_readers(name, pairs).items():
                    found[variant][f"{name}/{reader}"] = counts
    return found


def figures(counts: list[int]) -> tuple[float, float, float, float]:
    return clicks.figures(counts)


def table(title: str, found: dict[str, Counts], modes: Sequence[str]) -> None:
    print(f"\n{title}: P / R / F1 / P@10")
    print(f"{'variant, set':28}" + "".join(f"{mode:>30}" for mode in modes))
    for variant, readers in found.items():
        names = sorted({reader.split("/")[0] for reader in readers})
        for name in [*names, "pooled"]:
            chosen = [counts for reader, counts in readers.items() if name == "pooled" or reader.split("/")[0] == name]
            cells = [
                figures([sum(values) for values in zip(*(c[mode] for c in chosen), strict=True)]) for mode in modes
            ]
            print(
                f"{variant + ', ' + name:28}"
                + "".join(f"{p:.3f} / {r:.3f} / {f:.3f} / {d:.3f}".rjust(30) for p, r, f, d in cells)
            )


def micro(matrix: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of readers' [true positives, predicted, wanted] rows added up."""
    tp, predicted, wanted = matrix.sum(axis=0)[:3]
    return (tp / predicted if predicted else 1.0), (tp / wanted if wanted else 1.0)


def micro_f1(matrix: np.ndarray) -> float:
    precision, recall = micro(matrix)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def rule(title: str, found: dict[str, Counts], mode: str) -> list[str]:
    readers = sorted(found["terms"])
    base = np.array([found["terms"][reader][mode][:3] for reader in readers], dtype=np.float64)
    verdicts = []
    print(f"\n{title}, the rule (after-feedback, micro-averaged over {len(readers)} readers):")
    for variant in VARIANTS[1:]:
        other = np.array([found[variant][reader][mode][:3] for reader in readers], dtype=np.float64)
        (base_p, base_r), (new_p, new_r) = micro(base), micro(other)
        change, recall_change = new_p - base_p, new_r - base_r
        draws = np.random.default_rng(0).integers(0, len(readers), size=(DRAWS, len(readers)))
        sd = float(np.std([micro(other[draw])[0] - micro(base[draw])[0] for draw in draws], ddof=1))
        without = [
            micro(np.delete(other, reader, axis=0))[0] - micro(np.delete(base, reader, axis=0))[0]
            for reader in range(len(readers))
        ]
        helped = int(np.argmin(without))
        passes = change > sd and recall_change >= -0.01 and without[helped] > 0
        base_f1, new_f1 = micro_f1(base), micro_f1(other)
        passes_heldout = change > sd and new_f1 >= base_f1 and without[helped] > 0
        (tp, predicted, wanted), (new_tp, new_predicted, _) = (
            base.sum(axis=0).astype(int),
            other.sum(axis=0).astype(int),
        )
        print(
            f"  {variant}: found / picked / wanted {tp} / {predicted} / {wanted} -> "
            f"{new_tp} / {new_predicted} / {wanted}"
        )
        print(
            f"  {variant}: precision {base_p:.3f} -> {new_p:.3f} ({change:+.3f} +- {sd:.3f}), recall {base_r:.3f} -> "
            f"{new_r:.3f} ({recall_change:+.3f}), F1 {base_f1:.4f} -> {new_f1:.4f}; without {readers[helped]}: "
            f"{without[helped]:+.3f}; {'passes' if passes else 'fails'} LIKEDVEC-RULE.md, "
            f"{'passes' if passes_heldout else 'fails'} CLICKS-HELDOUT-RULE.md"
        )
        verdicts.append(
            f"bench={title} variant={variant} precision_change={change:.3f} sd={sd:.3f} "
            f"recall_change={recall_change:.3f} f1_terms={base_f1:.4f} f1_variant={new_f1:.4f} "
            f"without_most_helped={without[helped]:.3f} passes={int(passes)} passes_heldout={int(passes_heldout)}"
        )
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5, help="liked pairs per reader (bench/liked.py)")
    parser.add_argument("--sets", default=",".join(FIT_SETS), help="labelled sets (default: the fit sets)")
    parser.add_argument("--vector-cache", type=Path, help="an .npz file keeping the encoded vectors between runs")
    args = parser.parse_args()
    names = args.sets.split(",")
    roles = {labelled.name: labelled.role for labelled in load_sets(names)}
    if any(role != FIT for role in roles.values()):
        print(f"note: not only fit sets: {roles}")
    clicks.call_command("migrate", verbosity=0)
    with (
        vector_cache(args.vector_cache),
        patched(liked_bench, BatchIndex=RegisteredIndex),
    ):
        liked_found = liked_counts(names, args.pairs)
    table("liked (two liked papers per reader)", liked_found, ("before", "after"))
    last = rule("liked", liked_found, "after")
    print(" ".join(last))


if __name__ == "__main__":
    main()
