"""'More like papers you marked': a per-subscriber linear model over the papers' sentence vectors.

arxiv-sanity-lite's per-tag SVM is the anchor (a linear classifier over the papers' features, the
tagged papers positive, every other paper negative, classes balanced); Scholar Inbox and
zotero-arxiv-daily learn from ratings or a library the same way. Here:

- positives: the papers the reader clicked "more like this" on, their liked-papers list, and their
  own words (interest and wanted keywords) as one more example;
- negatives: the papers they clicked "less like this" on (LESS_SHARE of the class's weight) and
  recent stored papers as background (what an ordinary day looks like); the two classes weigh
  alike;
- an L2-regularised logistic regression over the DIMENSIONS of the examples' sentence vectors
  (digest/matching/embedding.py, the vectors the interest matcher compares).

It is trained when the reader clicks, likes or unlikes (`retrain`), from the examples' stored
vectors (digest/matching/vectors.py: a paper's is stored at ingestion, the reader's words are
encoded once and stored), kept as a ReaderModel row (DIMENSIONS float32 weights and a bias), and
only read at match time: a match run costs one product per reader of its weights with the papers'
vectors it has already read (`reader_logits`). A reader's model speaks once they have marked or
liked MIN_EXAMPLES papers, one of them by a click and one positive (readers with a liked list only
keep digest/matching/liked.py's signal, which this model then replaces). At match time its logit is
read in robust standard deviations above the batch's median (`standardized`):

- a paper PICK or more above gets relevance from PICK_RELEVANCE up, capped at MODEL_MAX, with the
  reason "more like papers you marked" (or "...you liked and marked" when the liked list is among
  the positives);
- a paper below UNLIKE_BELOW keeps UNLIKE_FACTOR of its relevance, unless it holds one of the
  reader's own keywords: a click never overrides what the reader asked for.

The constants were chosen for the model's first form, over TF-IDF terms, on the fit sets (seeds,
feeds-a) by bench/clicks.py --tune, and kept when the sentence vectors replaced the terms (they
are read in robust deviations, so scale-free). The vectors replaced the terms after a held-out
test (bench/relevance/CLICKS-HELDOUT-RULE.md): after two clicks each way precision 0.993 instead of
the terms' 0.686, F1 0.832 instead of 0.730 (docs/decisions.md).
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from django.db import transaction
from scipy.optimize import minimize

from digest.matching.embedding import DIMENSIONS, embedding_text
from digest.models import LikedPaper, MarkedPaper, Paper, ReaderModel
from subscribers.keywords import positive_keywords
from subscribers.models import Subscriber

if TYPE_CHECKING:
    from digest.matching.engine import BatchIndex, Matcher
    from subscribers.keywords import KeywordQuery

MIN_EXAMPLES = 2
BACKGROUND_PAPERS = 400
# Share of the negative class's weight the reader's own "less" papers carry (the background has the rest).
LESS_SHARE = 0.2
L2 = 0.01
MAX_LIKED_EXAMPLES = 50
# Examples whose vectors are not stored that one retraining in a web request encodes (about 0.1 s
# each): the others wait for a later retraining (`retrain`).
ENCODED_AT_A_CLICK = 10
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
# How the weights are stored (ReaderModel.weights) and held (ReaderWeights.weights).
WEIGHT_DTYPE = np.dtype("<f4")
WEIGHT_BYTES = DIMENSIONS * WEIGHT_DTYPE.itemsize


@dataclass(frozen=True)
class ReaderWeights:
    """A trained model as the matcher holds it: hashable, 1.5 KB."""

    weights: bytes  # one little-endian float32 per dimension of the sentence vector
    bias: float
    reason: str = "more like papers you marked"

    def array(self) -> np.ndarray:
        return np.frombuffer(self.weights, dtype=WEIGHT_DTYPE)


@dataclass(frozen=True)
class Examples:
    """The texts whose vectors the model learns from (a paper's as embedding_text gives it)."""

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


def train(vectors: np.ndarray, positives: int, negatives: int) -> ReaderWeights:
    """A logistic regression over the rows of `vectors` (sentence vectors): the first `positives`
    against the next `negatives` and the background after them (class-balanced, `fit`)."""
    weights, bias = fit(np.asarray(vectors, dtype=np.float64), positives, negatives)
    return ReaderWeights(weights=weights.astype(WEIGHT_DTYPE).tobytes(), bias=bias)


def examples_of(subscriber: Subscriber) -> Examples:
    """The reader's marked papers and liked papers, and their words. Every query names its columns
    (migration 0019 retrains stored models through this function)."""
    marked = list(
        MarkedPaper.objects.filter(subscriber=subscriber).values_list(
            "direction", "paper_id", "paper__title", "paper__abstract"
        )
    )
    liked = list(
        LikedPaper.objects.filter(subscriber=subscriber, paper__isnull=False)
        .exclude(paper__in=[paper_id for _, paper_id, _, _ in marked])
        .order_by("-added_at", "-id")
        .values_list("paper__title", "paper__abstract")[:MAX_LIKED_EXAMPLES]
    )
    more = [
        embedding_text(title, abstract)
        for direction, _, title, abstract in marked
        if direction == MarkedPaper.Direction.MORE
    ]
    less = [
        embedding_text(title, abstract)
        for direction, _, title, abstract in marked
        if direction == MarkedPaper.Direction.LESS
    ]
    liked_papers = [embedding_text(title, abstract) for title, abstract in liked]
    words = " ".join([subscriber.interests, *positive_keywords(subscriber.keywords)]).strip()
    return Examples(
        positives=(*more, *liked_papers) + ((words,) if WORDS_AS_POSITIVE and words and (more or liked_papers) else ()),
        negatives=tuple(less),
        from_clicks=bool(marked),
        from_liked=bool(liked_papers),
        given=len(more) + len(less) + len(liked_papers),
        positives_given=len(more) + len(liked_papers),
    )


@transaction.atomic
def retrain(subscriber: Subscriber, encode_at_most: int | None = ENCODED_AT_A_CLICK) -> ReaderModel | None:
    """Train the subscriber's model from what they marked and liked, and store it; with too few
    examples, drop any stored model (undoing clicks undoes what they taught). Safe to run twice.

    The examples' vectors are read as stored; of those not stored (the reader's words when they
    changed, papers whose vectors retention deleted after RETENTION_DAYS unread) `encode_at_most`
    are encoded and stored here, positives first, and the others left out of this model: the web
    requests (a click, an undo, an unlike) answer within a second or so whatever the reader marked
    over the years, and each encodes a few more (`retrain_from_every_example`, for a worker, encodes
    the rest first); migration 0019 passes None and learns from every example. The background is
    the newest papers whose vectors are stored (at ingestion): never encoded here.

    The reader's row is locked first, as a click locks it (feedback.apply_feedback): two
    retrainings of one reader take turns, and the later reads what the earlier committed, so the
    model stored last learned from both."""
    # vectors.py reads interests through the engine, which holds this module's models.
    from digest.matching.vectors import available_vectors, vectors_if_stored

    # The reader's words as the locked row holds them: the caller's copy may be older (the re-match
    # read it before encoding for seconds, and a change saved meanwhile has its own re-match).
    locked = Subscriber.objects.select_for_update().filter(pk=subscriber.pk).only("interests", "keywords").first()
    examples = examples_of(locked or subscriber)
    if not examples.enough:
        ReaderModel.objects.filter(subscriber=subscriber).delete()
        return None
    # At least one: the first missing example is a positive (they come first), and a model needs one.
    at_most = None if encode_at_most is None else max(1, encode_at_most)
    found = available_vectors([*examples.positives, *examples.negatives], at_most)
    positives = [found[position] for position in range(len(examples.positives)) if position in found]
    negatives = [vector for position, vector in found.items() if position >= len(examples.positives)]
    example_ids = set(MarkedPaper.objects.filter(subscriber=subscriber).values_list("paper_id", flat=True))
    example_ids |= set(LikedPaper.objects.filter(subscriber=subscriber).values_list("paper_id", flat=True))
    background = (
        Paper.objects.exclude(id__in=[paper_id for paper_id in example_ids if paper_id])
        .order_by("-id")
        .values_list("title", "abstract")[:BACKGROUND_PAPERS]
    )
    typical = vectors_if_stored([embedding_text(title, abstract) for title, abstract in background]).values()
    trained = train(np.vstack([*positives, *negatives, *typical]), len(positives), len(negatives))
    model, _ = ReaderModel.objects.update_or_create(
        subscriber=subscriber,
        defaults={
            "weights": trained.weights,
            "bias": trained.bias,
            "positives": examples.positives_given,
            "negatives": len(examples.negatives),
            "from_clicks": examples.from_clicks,
            "from_liked": examples.from_liked,
        },
    )
    return model


def retrain_from_every_example(subscriber: Subscriber) -> ReaderModel | None:
    """A worker's retraining (the re-match): the examples' vectors not stored are encoded and stored
    first, outside any transaction, so outside the reader's row lock (seconds, once retention
    deleted a reader's old ones); `retrain` then finds them stored, and of the examples added
    meanwhile (a click) encodes at most what a click would."""
    from digest.matching.vectors import stored_vectors  # vectors.py imports the engine, which imports us

    examples = examples_of(subscriber)
    if examples.enough:
        stored_vectors([*examples.positives, *examples.negatives])
    return retrain(subscriber)


def stored_weights(subscriber: Subscriber) -> ReaderWeights | None:
    """The subscriber's stored model (select_related("reader_model") brings it with the subscriber);
    None for a row that cannot be one (emptied by migration 0018, the wrong length, a number not
    finite: an infinite logit would stand PICK above any median)."""
    try:
        stored = subscriber.reader_model
    except ReaderModel.DoesNotExist:
        return None
    weights = bytes(stored.weights)
    if len(weights) != WEIGHT_BYTES:
        return None
    if not (np.isfinite(np.frombuffer(weights, dtype=WEIGHT_DTYPE)).all() and np.isfinite(stored.bias)):
        return None
    return ReaderWeights(weights=weights, bias=stored.bias, reason=_reason(stored.from_liked))


def with_reader_model(matcher: "Matcher", subscriber: Subscriber) -> "Matcher":
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
    """The models' logit per paper of the batch (readers x papers), over the papers' sentence
    vectors (read once per run), one reader at a time (BatchIndex.paper_products): a reader scores
    alike in any chunk, and alone."""
    if not readers:
        return np.empty((0, index.size), dtype=np.float32)
    logits = index.paper_products(np.vstack([weights.array() for weights in readers]))
    return logits + np.array([weights.bias for weights in readers], dtype=np.float32)[:, np.newaxis]


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
