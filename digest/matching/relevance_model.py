"""The fitted models that turn a free-text interest's signals into relevance.

Two logistic models, fitted by `bench/relevance_fit.py` on the labelled sets whose role is "fit" or
"worn" (held out once, fitted on since their figures were published; never on held-out ones) and
stored in relevance_model.json beside this module, with the command that fits them:

- description: an interest alone (what it says is wanted, digest.matching.similarity.wanted_text),
  from its TF-IDF and LSA cosine similarities, its normalised BM25 score against the paper, and
  the cosine of its all-MiniLM-L6-v2 sentence vector with the paper's (digest.matching.embedding);
- both: an interest with keywords, adding whether a keyword is in the title, whether one is where
  the keyword rules count it fully (the title, or the abstract as typed), how many distinct keywords
  are so (at most 3), and the keywords' own TF-IDF, LSA and BM25 scores
  against the paper (their meaning, beyond their exact words).

Each model's cut-off was chosen on the sets fitted on for precision (the lowest reaching the issue's
precision goal, else the best F0.5); `relevance` shifts the logit so that the cut-off lands on
RANKING_MIN_RELEVANCE, the engine's one candidate threshold. The description model also has a
stricter `confident_cut` (the lowest reaching 0.925 precision on those sets): with keywords, a paper
is a candidate when the joint model or the description model at that cut-off picks it
(DESCRIPTION_CONFIDENT).
"""

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

WEIGHTS_FILE = Path(__file__).with_name("relevance_model.json")
# The names of digest.matching.similarity.MeaningScores, for the interest and, prefixed, the keywords;
# "embedding" is the cosine of the interest's sentence vector with the paper's (BatchIndex.embedding_scores).
DESCRIPTION_FEATURES = ("tfidf", "lsa", "bm25", "embedding")
BOTH_FEATURES = (
    "keyword_in_title",
    "keyword_strong",
    "keywords_strong",
    "tfidf",
    "lsa",
    "bm25",
    "embedding",
    "keywords_tfidf",
    "keywords_lsa",
    "keywords_bm25",
)


def _logit(probability: float) -> float:
    return math.log(probability / (1 - probability))


@dataclass(frozen=True)
class LogisticModel:
    features: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float
    cut: float
    confident_cut: float | None = None

    def weight(self, feature: str) -> float:
        return self.weights[self.features.index(feature)]

    def offset(self, min_relevance: float) -> float:
        """The intercept, moved so that a probability of `cut` lands on `min_relevance`."""
        return self.intercept + _logit(min_relevance) - _logit(self.cut)

    def logit(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """The weighted sum of those of the model's features that are given (the rest count 0),
        without the intercept."""
        given = [
            (weight, features[name])
            for name, weight in zip(self.features, self.weights, strict=True)
            if name in features
        ]
        logit = np.zeros(np.shape(given[0][1]), dtype=np.float32)
        for weight, values in given:
            logit += np.float32(weight) * values
        return logit

    def relevance(self, features: dict[str, np.ndarray], min_relevance: float) -> np.ndarray:
        """Relevance per paper: the fitted probability, moved so that `cut` maps to `min_relevance`;
        0 below it (on its own not evidence enough, and nothing to add to other evidence)."""
        return relevance_of(self.logit(features) + np.float32(self.offset(min_relevance)), min_relevance)


def relevance_of(logit: np.ndarray, min_relevance: float) -> np.ndarray:
    relevance = (1.0 / (1.0 + np.exp(-logit))).astype(np.float32, copy=False)
    return np.where(relevance >= np.float32(min_relevance), relevance, np.float32(0.0))


def load(path: Path = WEIGHTS_FILE) -> dict[str, LogisticModel]:
    stored = json.loads(path.read_text(encoding="utf-8"))
    return {
        name: LogisticModel(
            features=tuple(model["features"]),
            weights=tuple(model["weights"]),
            intercept=model["intercept"],
            cut=model["cut"],
            confident_cut=model.get("confident_cut"),
        )
        for name, model in stored["models"].items()
    }


MODELS = load()
DESCRIPTION = MODELS["description"]
BOTH = MODELS["both"]
DESCRIPTION_CONFIDENT = replace(DESCRIPTION, cut=DESCRIPTION.confident_cut or DESCRIPTION.cut)
