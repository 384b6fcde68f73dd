"""'More like papers you marked': a per-subscriber linear model over the papers' TF-IDF terms.

arxiv-sanity-lite's per-tag SVM is the anchor (a linear classifier over TF-IDF, the tagged papers
positive, every other paper negative, classes balanced); Scholar Inbox and zotero-arxiv-daily learn
from ratings or a library the same way. Here:

- positives: the papers the reader clicked "more like this" on, their liked-papers list, and their
  own words (interest and wanted keywords) as one more example;
- negatives: the papers they clicked "less like this" on (LESS_SHARE of the class's weight) and
  recent stored papers as background (what an ordinary day looks like); the two classes weigh
  alike;
- an L2-regularised logistic regression over the stems those examples use, its MAX_TERMS weightiest
  terms kept.

It is trained when the reader clicks, likes or unlikes (`retrain`), stored as a ReaderModel row (a
few hundred stems and float weights), and only read at match time: a match run costs one sparse
product per chunk of subscribers, their models stacked (`reader_logits`). A reader's model speaks
once they have marked or liked MIN_EXAMPLES papers, one of them by a click and one positive
(readers with a liked list only keep digest/matching/liked.py's signal, which this model then
replaces). At match time its logit is read in robust standard deviations above the batch's median
(`standardized`):

- a paper PICK or more above gets relevance from PICK_RELEVANCE up, capped at MODEL_MAX, with the
  reason "more like papers you marked" (or "...you liked and marked" when the liked list is among
  the positives);
- a paper below UNLIKE_BELOW keeps UNLIKE_FACTOR of its relevance, unless it holds one of the
  reader's own keywords: a click never overrides what the reader asked for.

The constants were chosen on the fit sets (seeds, feeds-a) by bench/clicks.py --tune and are
reported on the held-out feeds-b (docs/benchmarks.md, docs/decisions.md).
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np
from django.db import transaction
from scipy import sparse
from scipy.optimize import minimize

from digest.matching.similarity import TfidfModel, paper_text
from digest.models import LikedPaper, MarkedPaper, Paper, ReaderModel
from subscribers.keywords import positive_keywords

if TYPE_CHECKING:
    from digest.matching.engine import BatchIndex, Matcher
    from subscribers.keywords import KeywordQuery
    from subscribers.models import Subscriber

MIN_EXAMPLES = 2
MAX_TERMS = 300
BACKGROUND_PAPERS = 400
# Share of the negative class's weight the reader's own "less" papers carry (the background has the rest).
LESS_SHARE = 0.2
L2 = 0.01
MAX_LIKED_EXAMPLES = 50
# Whether the reader's own words (interest and wanted keywords) are one more positive example.
WORDS_AS_POSITIVE = True
# Match time. The model's logit is read relative to the batch (standard deviations above the
# batch's median): with a handful of examples its probabilities are not calibrated, its ranking is.
PICK = 5.0  # a paper this far above the batch's median is "more like papers you marked"
PICK_RELEVANCE = 0.4  # relevance at PICK, rising by PICK_STEP per standard deviation above it
PICK_STEP = 0.1
MODEL_MAX = 0.8
UNLIKE_BELOW = 0.0  # a paper below the batch's median is lowered
UNLIKE_FACTOR = 0.5


@dataclass(frozen=True)
class ReaderWeights:
    """A trained model as the matcher holds it: hashable, a few KB."""

    terms: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    reason: str = "more like papers you marked"


@dataclass(frozen=True)
class Examples:
    positives: tuple[str, ...]
    negatives: tuple[str, ...]
    from_clicks: bool
    from_liked: bool
    given: int  # papers the reader marked or liked (their own words are not counted)
    positives_given: int  # of which marked "more" or liked

    @property
    def enough(self) -> bool:
        return self.from_clicks and self.positives_given > 0 and self.given >= MIN_EXAMPLES


def _reason(from_liked: bool) -> str:
    return "more like papers you liked and marked" if from_liked else "more like papers you marked"


def fit(features: np.ndarray, positives: int, negatives: int) -> tuple[np.ndarray, float]:
    """An L2-regularised logistic regression (weights, bias): the first `positives` rows of
    `features` against the rest, of which the next `negatives` are the reader's "less" papers and
    the others background; the classes weigh alike."""
    count = len(features)
    examples = positives + negatives
    labels = np.zeros(count)
    labels[:positives] = 1.0
    sample = np.zeros(count)
    sample[:positives] = 1.0 / positives
    background = count - examples
    less_share = LESS_SHARE if negatives and background else (1.0 if negatives else 0.0)
    if negatives:
        sample[positives:examples] = less_share / negatives
    if background:
        sample[examples:] = (1.0 - less_share) / background

    def loss(parameters: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = parameters[:-1], parameters[-1]
        logit = features @ weights + bias
        probability = 1.0 / (1.0 + np.exp(-logit))
        value = float(sample @ (np.logaddexp(0.0, logit) - labels * logit)) + 0.5 * L2 * float(weights @ weights)
        error = sample * (probability - labels)
        return value, np.append(features.T @ error + L2 * weights, error.sum())

    fitted = minimize(loss, np.zeros(features.shape[1] + 1), jac=True, method="L-BFGS-B").x
    return fitted[:-1], float(fitted[-1])


def train(positives: Sequence[str], negatives: Sequence[str], background: Sequence[str]) -> ReaderWeights:
    """A logistic regression, the positives against the negatives and the background (class-balanced)."""
    texts = [*positives, *negatives, *background]
    model = TfidfModel(texts)
    rows = model.transform(texts)
    examples = len(positives) + len(negatives)
    columns = np.unique(rows[:examples].indices)
    features = rows[:, columns].toarray().astype(np.float64)
    weights, bias = fit(features, len(positives), len(negatives))
    kept = np.argsort(-np.abs(weights), kind="stable")[:MAX_TERMS]
    terms = sorted(model.vocabulary, key=model.vocabulary.__getitem__)
    return ReaderWeights(
        terms=tuple(terms[columns[column]] for column in kept.tolist()),
        weights=tuple(float(np.float32(weights[column])) for column in kept.tolist()),
        bias=bias,
    )


def examples_of(subscriber: "Subscriber") -> Examples:
    """The reader's marked papers and liked papers, as the similarity model reads papers."""
    marked = list(MarkedPaper.objects.filter(subscriber=subscriber).select_related("paper"))
    liked = list(
        LikedPaper.objects.filter(subscriber=subscriber, paper__isnull=False)
        .exclude(paper__in=[row.paper_id for row in marked])
        .select_related("paper")
        .order_by("-added_at", "-id")[:MAX_LIKED_EXAMPLES]
    )
    more = [row.paper for row in marked if row.direction == MarkedPaper.Direction.MORE]
    less = [row.paper for row in marked if row.direction == MarkedPaper.Direction.LESS]
    liked_papers = [row.paper for row in liked if row.paper is not None]
    words = " ".join([subscriber.interests, *positive_keywords(subscriber.keywords)]).strip()
    return Examples(
        positives=tuple(paper_text(paper.title, paper.abstract) for paper in [*more, *liked_papers])
        + ((words,) if WORDS_AS_POSITIVE and words and (more or liked_papers) else ()),
        negatives=tuple(paper_text(paper.title, paper.abstract) for paper in less),
        from_clicks=bool(marked),
        from_liked=bool(liked_papers),
        given=len(more) + len(less) + len(liked_papers),
        positives_given=len(more) + len(liked_papers),
    )


@transaction.atomic
def retrain(subscriber: "Subscriber") -> ReaderModel | None:
    """Train the subscriber's model from what they marked and liked, and store it; with too few
    examples, drop any stored model (undoing clicks undoes what they taught). Safe to run twice."""
    examples = examples_of(subscriber)
    if not examples.enough:
        ReaderModel.objects.filter(subscriber=subscriber).delete()
        return None
    example_ids = set(MarkedPaper.objects.filter(subscriber=subscriber).values_list("paper_id", flat=True))
    example_ids |= set(LikedPaper.objects.filter(subscriber=subscriber).values_list("paper_id", flat=True))
    background = (
        Paper.objects.exclude(id__in=[paper_id for paper_id in example_ids if paper_id])
        .order_by("-id")
        .values_list("title", "abstract")[:BACKGROUND_PAPERS]
    )
    trained = train(examples.positives, examples.negatives, [paper_text(t, a) for t, a in background])
    stored, _ = ReaderModel.objects.update_or_create(
        subscriber=subscriber,
        defaults={
            "terms": list(trained.terms),
            "weights": list(trained.weights),
            "bias": trained.bias,
            "positives": examples.positives_given,
            "negatives": len(examples.negatives),
            "from_clicks": examples.from_clicks,
            "from_liked": examples.from_liked,
        },
    )
    return stored


def stored_weights(subscriber: "Subscriber") -> ReaderWeights | None:
    """The subscriber's stored model (select_related("reader_model") brings it with the subscriber)."""
    try:
        stored = subscriber.reader_model
    except ReaderModel.DoesNotExist:
        return None
    if not stored.terms:
        return None
    return ReaderWeights(
        terms=tuple(stored.terms),
        weights=tuple(stored.weights),
        bias=stored.bias,
        reason=_reason(stored.from_liked),
    )


def with_reader_model(matcher: "Matcher", subscriber: "Subscriber") -> "Matcher":
    weights = stored_weights(subscriber)
    return replace(matcher, reader=weights) if weights is not None else matcher


@dataclass(frozen=True)
class ReaderScores:
    """The model's say on one batch: evidence for the papers it picks, and the papers it lowers."""

    evidence: list[tuple[str, np.ndarray]]
    unlike: np.ndarray  # per paper: lowered, the reader's own keyword matches already left out

    def sharpen(self, relevance: np.ndarray) -> None:
        relevance[self.unlike] *= UNLIKE_FACTOR


def reader_logits(readers: Sequence[ReaderWeights], index: "BatchIndex") -> np.ndarray:
    """The models' logit per paper of the batch (readers x papers), over the batch's own TF-IDF rows,
    in one sparse product for a whole chunk. Each reader's row is summed over its own terms in its
    own order, whatever the other readers are (scipy's CSR product computes an output row from its
    input row alone): a reader scores alike in any chunk, and alone."""
    vocabulary = index.similarity.model.vocabulary
    indptr, indices, values = [0], [], []
    for weights in readers:
        columns = np.fromiter(map(vocabulary.get, weights.terms, repeat(-1)), dtype=np.int64, count=len(weights.terms))
        known = columns >= 0
        indices.append(columns[known])
        values.append(np.array(weights.weights, dtype=np.float32)[known])
        indptr.append(indptr[-1] + int(known.sum()))
    stacked = sparse.csr_matrix(
        (
            np.concatenate([np.zeros(0, np.float32), *values]),
            np.concatenate([np.zeros(0, np.int64), *indices]),
            np.array(indptr, dtype=np.int64),
        ),
        shape=(len(readers), len(vocabulary)),
    )
    bias = np.array([weights.bias for weights in readers], dtype=np.float32)
    return index.similarity.term_products(stacked) + bias[:, np.newaxis]


def logits(weights: ReaderWeights, index: "BatchIndex") -> np.ndarray:
    """One reader's logit per paper of the batch (`reader_logits`, a batch of one)."""
    return reader_logits([weights], index)[0]


def standardized(logit: np.ndarray) -> np.ndarray:
    """Robust standard deviations above the batch's median: a few papers the model knows well (one
    it was trained on, reappearing) do not stretch the scale for the others."""
    centre = float(np.median(logit))
    spread = 1.4826 * float(np.median(np.abs(logit - centre)))
    return (logit - centre) / spread if spread > 0 else np.zeros_like(logit)


def reader_scores(
    weights: ReaderWeights, logit: np.ndarray, index: "BatchIndex", keywords: "KeywordQuery"
) -> ReaderScores:
    """`logit`: the reader's row of `reader_logits`, computed for the whole chunk."""
    above = standardized(logit)
    picked = above >= PICK
    relevance = np.minimum(MODEL_MAX, PICK_RELEVANCE + PICK_STEP * (above - PICK))
    evidence = np.where(picked, relevance, 0.0).astype(np.float32)
    unlike = above < UNLIKE_BELOW
    for term in keywords.include:
        unlike[index.term_hits(term).positions] = False
    return ReaderScores(evidence=[(weights.reason, evidence)] if picked.any() else [], unlike=unlike)
