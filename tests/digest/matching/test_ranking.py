from datetime import UTC, datetime, timedelta

import pytest

from digest.matching.engine import BatchIndex, PaperDoc, build_matcher, match_many
from digest.matching.ranking import RankingWeights, score, trend_multiplier, trendiness

NOW = datetime(2026, 11, 26, 8, tzinfo=UTC)
WEIGHTS = RankingWeights()


def test_trendiness_is_bounded_so_relevance_dominates():
    assert trendiness(0, 10_000, 1, WEIGHTS) == pytest.approx(0.0, abs=1e-3)
    assert trendiness(10**9, 0, 50, WEIGHTS) == pytest.approx(1.0)
    assert 1.0 <= trend_multiplier(10**9, 0, 50, WEIGHTS) <= 1 + WEIGHTS.trend_weight


def test_a_viral_weakly_relevant_paper_does_not_beat_a_strongly_relevant_quiet_one():
    viral = score(0.45, trend_multiplier(upvotes=5000, age_hours=0, sources=5, weights=WEIGHTS))
    quiet = score(0.7, trend_multiplier(upvotes=0, age_hours=24 * 30, sources=1, weights=WEIGHTS))
    assert quiet > viral


def test_between_equally_relevant_papers_the_trendier_wins():
    assert score(0.5, trend_multiplier(40, 2, 1, WEIGHTS)) > score(0.5, trend_multiplier(2, 2, 1, WEIGHTS))
    assert score(0.5, trend_multiplier(0, 1, 1, WEIGHTS)) > score(0.5, trend_multiplier(0, 100, 1, WEIGHTS))
    assert score(0.5, trend_multiplier(0, 1, 3, WEIGHTS)) > score(0.5, trend_multiplier(0, 1, 1, WEIGHTS))


def test_recency_halves_at_the_half_life_and_upvotes_saturate():
    only_recency = RankingWeights(upvotes_weight=0, sources_weight=0, recency_weight=1, half_life_hours=48)
    assert trendiness(0, 48, 1, only_recency) == pytest.approx(0.5)
    assert trendiness(0, 96, 1, only_recency) == pytest.approx(0.25)
    only_upvotes = RankingWeights(upvotes_weight=1, sources_weight=0, recency_weight=0, upvotes_saturation=100)
    assert trendiness(100, 0, 1, only_upvotes) == pytest.approx(1.0)
    assert trendiness(100_000, 0, 1, only_upvotes) == pytest.approx(1.0)
    assert 0.4 < trendiness(9, 0, 1, only_upvotes) < 0.6


def test_the_weights_come_from_settings(settings):
    settings.RANKING_TREND_WEIGHT = 0.25
    settings.RANKING_HALF_LIFE_HOURS = 12.0
    weights = RankingWeights.from_settings()
    assert weights.trend_weight == 0.25 and weights.half_life_hours == 12.0


def test_matching_orders_a_strong_old_match_before_a_weak_viral_one():
    papers = [
        PaperDoc(
            id=1,
            title="A survey of everything",
            abstract="Mentions diffusion once.",
            upvotes=9000,
            published=NOW,
            sources=3,
        ),
        PaperDoc(
            id=2,
            title="Diffusion models for video",
            abstract="Video diffusion.",
            upvotes=0,
            published=NOW - timedelta(days=20),
        ),
    ]
    index = BatchIndex(papers, now=NOW, weights=WEIGHTS)
    [matches] = match_many([build_matcher(keywords="diffusion")], index)
    assert [match.paper_id for match in matches] == [2, 1]
    assert matches[1].score > matches[1].relevance


def test_papers_below_the_relevance_floor_are_not_candidates_however_trendy():
    papers = [PaperDoc(id=1, title="Unrelated", abstract="Nothing to see.", upvotes=10**6, published=NOW, sources=9)]
    index = BatchIndex(papers, now=NOW, weights=WEIGHTS)
    [matches] = match_many([build_matcher(keywords="diffusion", interests="graph neural networks")], index)
    assert len(matches) == 0
