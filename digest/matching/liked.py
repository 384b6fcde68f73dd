"""'Similar to 2 papers you liked': what a subscriber's liked-papers list does to matching.

A linear model over the batch's TF-IDF rows (similarity.py), Rocchio's: the weights are the mean
of the liked papers minus the mean of the batch's papers (the negatives of arxiv-sanity-lite's
per-tag SVM, without the fitting). A paper's score is its mean cosine similarity to the liked papers
minus TYPICAL_WEIGHT times its mean similarity to the whole batch, so words every paper of the day
uses ("retrieval", "LLM") count for little. Then:

- a paper scoring LIKED_SIMILAR or more gets relevance from it (LIKED_FULL or more counts as
  LIKED_MAX), combined with the other evidence, and the reason "similar to N papers you liked",
  N being the liked papers it scores LIKED_SIMILAR or more against on its own;
- any other paper keeps UNLIKE_FACTOR of the relevance the other signals gave it. At 1.0 (since
  the matcher's second relevance round) it keeps all of it: damping them to 0.3 cost a third of
  the recall of readers with keywords and an interest for no precision the grid could keep.

The constants were chosen on the labelled fit set feeds-a and are reported on the held-out feeds-b
and feeds-c (bench/liked.py, docs/benchmarks.md; what was tried is in docs/decisions.md). A subscriber without
liked papers costs nothing here.
"""

from collections import ChainMap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

import numpy as np
from django.db.models import Prefetch, QuerySet

from digest.matching.similarity import PaperSimilarity, paper_text
from digest.models import LikedPaper

if TYPE_CHECKING:
    from digest.matching.engine import Matcher
    from subscribers.models import Subscriber

# Score (see above) from which a paper counts as similar to the liked papers.
LIKED_SIMILAR = 0.1
# Score to relevance: LIKED_FULL or more counts as LIKED_MAX.
LIKED_FULL = 0.2
LIKED_MAX = 0.8
TYPICAL_WEIGHT = 1.0
UNLIKE_FACTOR = 1.0
# The newest liked papers are used when a list is longer: matching time stays bounded.
MAX_LIKED_IN_MATCHER = 50


# Liked papers' similarity rows kept per batch (a row is 4 bytes per paper: 8 KB for 2,000 papers).
MAX_CACHED_ROWS = 4096
_rows: "WeakKeyDictionary[PaperSimilarity, dict[str, np.ndarray]]" = WeakKeyDictionary()


# What store_matches prefetches, so that a chunk's subscribers bring their liked papers in one query.
def _liked_rows() -> "QuerySet[LikedPaper]":
    return LikedPaper.objects.filter(paper__isnull=False).select_related("paper").order_by("-added_at", "-id")


LIKED_PREFETCH = Prefetch("liked_papers", queryset=_liked_rows(), to_attr="liked_with_papers")


def liked_texts(subscriber: "Subscriber") -> tuple[str, ...]:
    """The subscriber's liked papers as the similarity model reads papers (prefetched with LIKED_PREFETCH)."""
    rows = getattr(subscriber, "liked_with_papers", None)
    if rows is None:
        rows = list(_liked_rows().filter(subscriber=subscriber)[:MAX_LIKED_IN_MATCHER])
    return tuple(paper_text(row.paper.title, row.paper.abstract) for row in rows[:MAX_LIKED_IN_MATCHER] if row.paper)


def with_liked_papers(matcher: "Matcher", subscriber: "Subscriber") -> "Matcher":
    texts = liked_texts(subscriber)
    return replace(matcher, liked=texts) if texts else matcher


def liked_paper_ids(subscribers: Sequence["Subscriber"]) -> set[tuple[int, int]]:
    """(subscriber id, paper id) of the papers they liked: already read, never offered back."""
    return {
        (subscriber.pk, row.paper_id)
        for subscriber in subscribers
        for row in getattr(subscriber, "liked_with_papers", ())
        if row.paper_id
    }


def liked_rows(liked_lists: Iterable[Sequence[str]], similarity: PaperSimilarity) -> Mapping[str, np.ndarray]:
    """The similarity rows of a chunk's liked papers (`similarity.scores`), those the batch has not
    cached yet computed in one product rather than one per subscriber, at most MAX_CACHED_ROWS of
    them (`_similarities` computes any others). Each row is the same as computed alone."""
    known = _rows.setdefault(similarity, {})
    missing = [text for text in dict.fromkeys(text for liked in liked_lists for text in liked) if text not in known]
    if not missing:
        return known
    fresh = dict(zip(missing[:MAX_CACHED_ROWS], similarity.scores(missing[:MAX_CACHED_ROWS]), strict=True))
    if len(known) + len(fresh) <= MAX_CACHED_ROWS:
        known.update(fresh)
        return known
    return ChainMap(fresh, known)


def _similarities(
    liked: Sequence[str], similarity: PaperSimilarity, given: Mapping[str, np.ndarray] | None = None
) -> np.ndarray:
    """similarity.scores(liked), each liked paper's row computed once per batch: many subscribers
    like the same papers, and reading an abstract costs more than the product. `given`: rows
    computed for the chunk already (`liked_rows`)."""
    if given is not None and all(text in given for text in liked):
        return np.vstack([given[text] for text in liked])
    known = _rows.setdefault(similarity, {})
    missing = [text for text in dict.fromkeys(liked) if text not in known]
    if missing:
        rows = similarity.scores(missing)
        if len(known) + len(missing) <= MAX_CACHED_ROWS:
            known.update(zip(missing, rows, strict=True))
        else:
            fresh = {**known, **dict(zip(missing, rows, strict=True))}
            return np.vstack([fresh[text] for text in liked])
    return np.vstack([known[text] for text in liked])


@dataclass(frozen=True)
class LikedScores:
    """The liked papers' say on one batch: extra evidence, and the papers unlike them."""

    evidence: list[tuple[str, np.ndarray]]  # (reason, relevance per paper), one per number of liked papers
    unlike: np.ndarray  # per paper: not similar to the liked papers

    def sharpen(self, relevance: np.ndarray) -> None:
        relevance[self.unlike] *= UNLIKE_FACTOR


def liked_scores(
    liked: Sequence[str], similarity: PaperSimilarity, rows: Mapping[str, np.ndarray] | None = None
) -> LikedScores | None:
    """`rows`: the chunk's liked papers' rows (`liked_rows`), when computed already."""
    if not liked or not similarity.paper_count:
        return None
    per_liked = _similarities(liked, similarity, rows) - TYPICAL_WEIGHT * similarity.typicality
    score = per_liked.mean(axis=0)
    similar = score >= LIKED_SIMILAR
    counts = np.where(similar, (per_liked >= LIKED_SIMILAR).sum(axis=0), 0)
    relevance = np.where(similar, np.minimum(LIKED_MAX, score * (LIKED_MAX / LIKED_FULL)), 0.0).astype(np.float32)
    evidence = []
    for count in np.unique(counts[similar]).tolist():
        noun = "paper" if count == 1 else "papers"
        evidence.append((f"similar to {count} {noun} you liked", np.where(counts == count, relevance, 0.0)))
    return LikedScores(evidence=evidence, unlike=~similar)
