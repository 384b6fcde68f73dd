"""The final order of a subscriber's papers: relevance, lifted a bounded amount by trendiness.

    trendiness = (U * upvotes_part + R * recency_part + S * sources_part) / (U + R + S)   in [0, 1]
    upvotes_part = min(1, log(1 + upvotes) / log(1 + UPVOTES_SATURATION))
    recency_part = 0.5 ** (age_hours / HALF_LIFE_HOURS)
    sources_part = min(1, (feeds announcing the paper - 1) / 2)
    score = relevance * (1 + TREND_WEIGHT * trendiness)

Trendiness multiplies relevance and is at most 1 + TREND_WEIGHT, so a paper can only overtake a
more relevant one whose relevance is within that factor of its own: with the default 0.3, a
keyword found only in an abstract (relevance 0.5) never passes a keyword in a title (0.7), however
many upvotes it has.
Papers below MIN_RELEVANCE are not candidates at all, however trendy.
"""

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings


@dataclass(frozen=True)
class RankingWeights:
    trend_weight: float = 0.3
    upvotes_weight: float = 0.5
    upvotes_saturation: float = 100.0
    recency_weight: float = 0.4
    half_life_hours: float = 48.0
    sources_weight: float = 0.1
    min_relevance: float = 0.2

    @classmethod
    def from_settings(cls) -> "RankingWeights":
        return cls(
            trend_weight=settings.RANKING_TREND_WEIGHT,
            upvotes_weight=settings.RANKING_UPVOTES_WEIGHT,
            upvotes_saturation=settings.RANKING_UPVOTES_SATURATION,
            recency_weight=settings.RANKING_RECENCY_WEIGHT,
            half_life_hours=settings.RANKING_HALF_LIFE_HOURS,
            sources_weight=settings.RANKING_SOURCES_WEIGHT,
            min_relevance=settings.RANKING_MIN_RELEVANCE,
        )


def trendiness(upvotes: int, age_hours: float, sources: int, weights: RankingWeights) -> float:
    upvotes_part = min(1.0, math.log1p(max(upvotes, 0)) / math.log1p(max(weights.upvotes_saturation, 1.0)))
    recency_part = 0.5 ** (max(age_hours, 0.0) / weights.half_life_hours) if weights.half_life_hours > 0 else 1.0
    sources_part = min(1.0, max(sources - 1, 0) / 2)
    total = weights.upvotes_weight + weights.recency_weight + weights.sources_weight
    if total <= 0:
        return 0.0
    mixed = (
        weights.upvotes_weight * upvotes_part
        + weights.recency_weight * recency_part
        + weights.sources_weight * sources_part
    )
    return mixed / total


def trend_multiplier(upvotes: int, age_hours: float, sources: int, weights: RankingWeights) -> float:
    return 1.0 + weights.trend_weight * trendiness(upvotes, age_hours, sources, weights)


def score(relevance: float, multiplier: float) -> float:
    return relevance * multiplier


def age_hours(published: datetime | None, now: datetime) -> float:
    return max(0.0, (now - published).total_seconds() / 3600) if published else 0.0


def trend_multipliers(
    upvotes: list[int], published: list[datetime | None], sources: list[int], now: datetime, weights: RankingWeights
) -> np.ndarray:
    return np.array(
        [
            trend_multiplier(u, age_hours(p, now), s, weights)
            for u, p, s in zip(upvotes, published, sources, strict=True)
        ],
        dtype=np.float32,
    )
