from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from digest.matching import liked, relevance_model
from digest.matching.engine import (
    BatchIndex,
    Matcher,
    PaperDoc,
    _add_keyword_logit,
    build_matcher,
    keyword_features,
    match_many,
    match_subscribers,
)
from digest.matching.ranking import RankingWeights
from digest.matching.similarity import paper_text
from seeds.build_seed_feed import read_papers
from subscribers.keywords import parse_keywords
from tests.support import ROOT

NOW = datetime(2026, 11, 26, 8, tzinfo=UTC)
SEED_PAGE = ROOT / "seeds" / "trending-papers-page.txt"

PAPERS = [
    PaperDoc(
        id=10,
        title="Neural fields for medical imaging",
        abstract="We fit neural fields to CT scans.",
        categories=("eess.IV",),
        published=NOW,
    ),
    PaperDoc(
        id=11,
        title="HNeRV: a hybrid neural representation for videos",
        abstract="Implicit neural representations (INRs) store videos; our neural field decoder is fast.",
        authors=("Hao Chen", "Yann LeCun"),
        categories=("cs.CV",),
        published=NOW,
    ),
    PaperDoc(
        id=12,
        title="Sparse autoencoders find circuits",
        abstract="Mechanistic interpretability of language models.",
        authors=("Neel Nanda",),
        categories=("cs.LG",),
        published=NOW,
    ),
    PaperDoc(
        id=13,
        title="Work at INRIA on graphs",
        abstract="Graph neural networks for molecules.",
        categories=("cs.LG", "q-bio.BM"),
        published=NOW,
    ),
]


@pytest.fixture
def index():
    return BatchIndex(PAPERS, now=NOW, weights=RankingWeights(), similarity_threshold=0.12)


def matched(index, **preferences):
    [matches] = match_many([build_matcher(**preferences)], index)
    return {match.paper_id: match for match in matches}


def test_a_keyword_matches_with_a_reason_naming_it(index):
    found = matched(index, keywords='"neural field"')
    assert set(found) == {10, 11}
    assert found[10].reason == "Matches your keyword 'neural field'"
    assert found[10].relevance > found[11].relevance  # in the title beats in the abstract


def test_an_excluded_keyword_vetoes_the_paper(index):
    assert set(matched(index, keywords='"neural field", -medical')) == {11}


def test_an_acronym_does_not_match_a_longer_word(index):
    assert set(matched(index, keywords="INR")) == {11}


def test_a_followed_author_matches_however_the_name_is_written(index):
    found = matched(index, authors=["LeCun, Y."])
    assert set(found) == {11}
    assert found[11].reason == "By Yann LeCun"


def test_a_topic_matches_by_its_keywords_and_description(index):
    found = matched(
        index,
        topics=[
            (
                "Interpretability",
                "Understanding what neural networks compute, circuits.",
                '"mechanistic interpretability", "sparse autoencoders"',
            )
        ],
    )
    assert 12 in found
    assert found[12].reason.startswith("In your topic Interpretability")


def test_the_interest_description_matches_by_meaning(index):
    found = matched(index, interests="I work on compressing video with implicit neural representations")
    assert 11 in found and 12 not in found
    # The reason quotes the words of the interest the paper shares, as the reader wrote them.
    assert found[11].reason == 'Matches your interest: "video with implicit neural representations"'


def test_several_reasons_are_given_strongest_first(index):
    found = matched(index, keywords="INR", authors=["Yann LeCun"])
    assert found[11].reason == "By Yann LeCun; matches your keyword 'INR'"


def test_the_interests_quote_stands_where_the_interest_ranks_among_the_reasons(index):
    first = matched(index, interests="graphs of molecules", keywords="molecules")
    assert first[13].reason == "Matches your interest: \"graphs of molecules\"; matches your keyword 'molecules'"
    # A followed author's relevance is a constant (0.9); this interest's, well below it.
    second = matched(index, interests="interpretability", authors=["Neel Nanda"])
    assert second[12].reason == 'By Neel Nanda; matches your interest: "interpretability"'
    # The quote runs over the filler words between shared ones and stops at punctuation.
    third = matched(index, interests="sparse autoencoders for interpretability; graph networks", keywords="molecules")
    assert third[12].reason == 'Matches your interest: "sparse autoencoders for interpretability"'


def test_a_category_filter_removes_papers_outside_it(index):
    assert set(matched(index, keywords='"neural field"', categories=["cs.CV"], category_mode="filter")) == {11}


def test_a_category_boost_raises_papers_inside_it_without_removing_others(index):
    plain = matched(index, keywords='"neural field"')
    boosted = matched(index, keywords='"neural field"', categories=["cs.CV"], category_mode="boost")
    assert set(boosted) == {10, 11}
    assert boosted[11].relevance > plain[11].relevance
    assert boosted[10].relevance == plain[10].relevance


def test_categories_alone_match_their_papers_and_archives_match_their_categories(index):
    assert set(matched(index, categories=["cs.LG"])) == {12, 13}
    assert set(matched(index, categories=["q-bio"], category_mode="filter")) == {13}


def test_no_preferences_match_nothing(index):
    assert matched(index) == {}


def test_subscribers_with_the_same_preferences_share_one_evaluation(index):
    first = build_matcher(keywords="INR, NeRV", authors=["Yann LeCun"])
    same = build_matcher(keywords="INR,NeRV, INRs", authors=["yann  lecun", "LeCun, Yann"])
    assert first == same
    found = match_subscribers({1: first, 2: same, 3: Matcher()}, index)
    assert found[1] is found[2]
    assert len(found[3]) == 0


def test_subscribers_sharing_preferences_among_others_each_get_what_they_would_get_alone(index):
    neural, graphs = build_matcher(keywords='"neural field", INR'), build_matcher(interests="graph neural networks")
    found = match_subscribers({5: neural, 3: graphs, 9: neural, 1: Matcher(), 4: graphs}, index)
    assert found[5] is found[9] and found[3] is found[4]
    assert list(found[5]) == list(match_many([neural], index)[0])
    assert list(found[3]) == list(match_many([graphs], index)[0])
    assert len(found[1]) == 0


def test_only_the_best_matches_are_kept(index):
    [matches] = match_many([build_matcher(keywords="neural, graph, sparse")], index, keep=2)
    assert len(matches) == 2
    assert matches[0].score >= matches[1].score


def test_on_the_seed_papers_a_neural_fields_subscriber_gets_the_video_representation_papers():
    pairs, _ = read_papers(SEED_PAGE.read_text(encoding="utf-8"))
    papers = [PaperDoc(id=number, title=title, abstract=abstract) for number, (title, abstract) in enumerate(pairs, 1)]
    index = BatchIndex(papers, now=NOW, weights=RankingWeights())
    [matches] = match_many([build_matcher(keywords='"neural field", INR, NeRV')], index)
    titles = [papers[match.paper_id - 1].title for match in matches]
    assert "HNeRV: A Hybrid Neural Representation for Videos" in titles
    assert "NERV++: An Enhanced Implicit Neural Video Representation" in titles
    assert not any("Sparse Autoencoders" in title for title in titles)


def test_a_reason_names_what_picked_the_paper():
    papers = [
        PaperDoc(id=1, title="Unit test generation with LLMs", abstract="We generate unit tests for software."),
        PaperDoc(id=2, title="Testing machine-learning systems", abstract="Finding bugs in machine learning code."),
        # The keyword in the title and in the abstract: with an interest about something else, the
        # joint model wants the keyword's evidence from more than the title alone.
        PaperDoc(
            id=3,
            title="Implicit neural representations for video",
            abstract="An implicit neural representation of video frames.",
        ),
        PaperDoc(id=4, title="Graph transformers", abstract="Attention on graphs.", authors=("Y. LeCun",)),
    ]
    index = BatchIndex(papers, now=NOW)
    [found] = match_many(
        [
            build_matcher(
                keywords='"implicit neural representation"',
                interests="testing machine-learning systems",
                authors=["Yann LeCun"],
            )
        ],
        index,
        keep=10,
    )
    reasons = {match.paper_id: match.reason for match in found}
    assert reasons[2] == 'Matches your interest: "testing machine-learning systems"'
    assert 1 not in reasons  # one shared word, "testing", is not what the reader meant
    words = index.similarity.interest_words("testing machine-learning systems")
    phrases = index.similarity.shared_phrases(words, np.array([0, 1]))
    assert phrases == ['"testing"', '"testing machine-learning systems"']
    assert reasons[3] == "Matches your keyword 'implicit neural representation'"
    assert reasons[4] == "By Y. LeCun"


def test_an_interest_never_matches_papers_for_what_it_says_it_does_not_want():
    pairs, _ = read_papers(SEED_PAGE.read_text(encoding="utf-8"))
    papers = [PaperDoc(id=number, title=title, abstract=abstract) for number, (title, abstract) in enumerate(pairs, 1)]
    index = BatchIndex(papers, now=NOW, weights=RankingWeights())
    interest = (
        "Compressing video with implicit neural representations. "
        "I do not want sparse autoencoders or the interpretability of language model features."
    )
    [matches] = match_many([build_matcher(interests=interest)], index)
    titles = [papers[match.paper_id - 1].title for match in matches]
    assert "NERV++: An Enhanced Implicit Neural Video Representation" in titles
    assert not any("Sparse Autoencoders" in title or "Interpretab" in title for title in titles)
    assert not any("autoencoder" in match.reason or "interpretab" in match.reason for match in matches)


def test_keywords_never_lose_papers_the_interest_alone_is_confident_of():
    pairs, _ = read_papers(SEED_PAGE.read_text(encoding="utf-8"))
    papers = [PaperDoc(id=number, title=title, abstract=abstract) for number, (title, abstract) in enumerate(pairs, 1)]
    index = BatchIndex(papers, now=NOW, weights=RankingWeights())
    interest = "Compressing video with implicit neural representations and coordinate networks"
    meaning = index.interest_meaning([interest])
    sure = relevance_model.DESCRIPTION_CONFIDENT.relevance(meaning, index.weights.min_relevance)[0]
    confident = set(index.ids[sure > 0].tolist())
    assert confident
    [with_keywords] = match_many([build_matcher(keywords="quantum chromodynamics", interests=interest)], index)
    assert confident <= set(with_keywords.paper_ids)


def generated_chunk(count: int, seed: int = 7) -> tuple[BatchIndex, list[Matcher]]:
    """bench/matching.py's generated papers and subscribers (fixed seed), a third with liked papers
    and a sixth with their own reader model, as one chunk over the bench's pseudo-random vectors."""
    from bench.matching import Generator, pseudo_vectors

    generator = Generator(seed)
    papers = [generator.paper(number) for number in range(1, 301)]
    models = generator.reader_models(3, papers)
    matchers = []
    for number in range(count):
        matcher = build_matcher(**generator.preferences())
        if number % 3 == 0:
            # Shared liked papers too, as readers of the same day have.
            matcher = replace(
                matcher, liked=generator.liked_papers() + tuple(paper_text(p.title, p.abstract) for p in papers[:2])
            )
        if number % 6 == 1:
            matcher = replace(matcher, reader=replace(models[number % 3], bias=-2.5 - number / count))
        matchers.append(matcher)
    return BatchIndex(papers, now=NOW, vectors=pseudo_vectors), matchers


def test_a_chunk_matched_at_once_ranks_every_subscriber_exactly_as_matching_each_alone():
    index, matchers = generated_chunk(90)
    # Each alone on a fresh index: nothing cached from the chunk (liked papers' rows, lookups).
    alone_index, _ = generated_chunk(0)
    alone = [match_many([matcher], alone_index)[0] for matcher in matchers]
    together = match_many(matchers, index)
    assert sum(map(len, together)) > 1000
    assert any("you liked" in reason for matches in together for reason in matches.reasons)
    assert any("you marked" in reason for matches in together for reason in matches.reasons)
    assert [list(matches) for matches in together] == [list(matches) for matches in alone]


def test_a_chunk_with_more_liked_papers_than_the_cache_holds_ranks_the_same(monkeypatch):
    index, matchers = generated_chunk(60)
    expected = [list(matches) for matches in match_many(matchers, index)]
    monkeypatch.setattr(liked, "MAX_CACHED_ROWS", 25)
    fresh_index, _ = generated_chunk(0)
    assert [list(matches) for matches in match_many(matchers, fresh_index)] == expected


def test_the_joint_model_counts_a_keyword_only_where_the_keyword_rules_count_it_fully():
    papers = [
        PaperDoc(id=1, title="Scans", abstract="We train neural fields on scans."),  # another form, abstract only
        PaperDoc(id=2, title="Scan models", abstract="A neural field decoder for scans."),  # as typed
        PaperDoc(id=3, title="Neural fields for video", abstract="Video."),  # any form in the title
        PaperDoc(id=4, title="Graphs", abstract="Graph neural networks."),
    ]
    index = BatchIndex(papers, now=NOW, weights=RankingWeights())
    query = parse_keywords('"neural field", decoder')
    features = keyword_features(query, index)
    assert features["keyword_strong"].tolist() == [0, 1, 1, 0]
    assert features["keywords_strong"].tolist() == [0, 2, 1, 0]
    assert features["keyword_in_title"].tolist() == [0, 0, 1, 0]
    # The engine adds the same features' part of the joint model's logit as the fitted model reads.
    logit = np.zeros(index.size, np.float32)
    _add_keyword_logit(logit, query, index, relevance_model.BOTH)
    np.testing.assert_allclose(logit, relevance_model.BOTH.logit(features), rtol=1e-6)


def test_a_runs_background_papers_do_not_shift_an_interests_lsa_similarity():
    """A run indexes its papers beside up to MATCH_IDF_PAPERS stored ones, which the LSA space is
    fitted on too: raw LSA cosines rise for every paper (issue 14). Centred on the batch, their level
    does not move (float32 sums: 1e-4), and the papers the description model picks alone stay picked.
    Single papers still move a little: the space and the IDF are refitted, only the level is removed."""
    from bench.relevance import background_papers

    pairs, _ = read_papers(SEED_PAGE.read_text(encoding="utf-8"))
    papers = [PaperDoc(id=number, title=title, abstract=abstract) for number, (title, abstract) in enumerate(pairs, 1)]
    # Unlabelled papers of a retrieval-augmented generation search: unrelated to the interest.
    background = background_papers(1000)
    assert len(background) == 1000
    interest = "Compressing video with implicit neural representations and coordinate networks"
    picked, level, raw_level = [], [], []
    for index in (
        BatchIndex(papers, now=NOW, weights=RankingWeights()),
        BatchIndex(papers, background=background, now=NOW, weights=RankingWeights()),
    ):
        meaning = index.interest_meaning([interest])
        relevance = relevance_model.DESCRIPTION.relevance(meaning, index.weights.min_relevance)[0]
        picked.append(set(index.ids[relevance > 0].tolist()))
        level.append(float(meaning["lsa"][0].mean()))
        index.similarity._lsa_centre[:] = 0  # the raw cosines, as before the centring
        raw_level.append(float(index.similarity.meaning_scores([interest]).lsa[0].mean()))
    assert picked[0] and picked[0] <= picked[1]
    assert abs(level[0]) < 1e-4 and abs(level[1]) < 1e-4
    # What the centring removes: the background lifts every raw cosine by about a fifth.
    assert raw_level[1] - raw_level[0] > 0.1
