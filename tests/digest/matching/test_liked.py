"""The liked-papers signal: "similar to 2 papers you liked", and papers unlike them count for less."""

import numpy as np
import pytest

from digest.matching import liked
from digest.matching.engine import BatchIndex, Matcher, PaperDoc, build_matcher, match_many
from digest.matching.liked import liked_scores, liked_texts
from digest.matching.runs import match_recent_papers
from digest.matching.similarity import PaperSimilarity, paper_text
from digest.models import Candidate, LikedPaper
from digest.papers.liked_papers import add_liked_papers
from subscribers.liked_input import LikedInput
from tests.support.digest_samples import make_paper, make_subscriber, seed_papers

# Seed papers: two video neural representations the reader liked, and the rest of the page.
LIKED = (1, 5)  # NERV++, HNeRV
SIMILAR = {2: "NIRVANA", 18: "Progressive Fourier", 43: "Boosting Neural Representations for Videos"}


@pytest.fixture(scope="module")
def seeds():
    return seed_papers()


@pytest.fixture(scope="module")
def index(seeds):
    return BatchIndex([PaperDoc(id=n, title=t, abstract=a) for n, (t, a) in enumerate(seeds) if n not in LIKED])


@pytest.fixture(scope="module")
def liked_papers(seeds):
    return tuple(paper_text(*seeds[n]) for n in LIKED)


def test_a_reader_with_only_liked_papers_gets_papers_like_them_and_says_how_many(index, liked_papers, seeds):
    [matches] = match_many([Matcher(liked=liked_papers)], index)
    found = {paper_id: reason for paper_id, _, _, reason in matches}
    assert set(SIMILAR) <= set(found)
    assert all(seeds[paper_id][0].startswith(start) for paper_id, start in SIMILAR.items())
    assert found[2] == found[43] == "Similar to 2 papers you liked"
    assert {reason for reason in found.values()} <= {"Similar to 1 paper you liked", "Similar to 2 papers you liked"}
    # Nothing about language models, brains or attention.
    assert not {6, 7, 10, 20, 41, 61} & set(found)


def test_keyword_matches_like_the_liked_papers_count_for_more_and_the_others_as_before(index, liked_papers):
    keywords = build_matcher(keywords="representation")
    before, after = match_many([keywords, Matcher(**{**vars(keywords), "liked": liked_papers})], index)
    relevance_before = dict(zip(before.paper_ids, before.relevance, strict=True))
    relevance_after = dict(zip(after.paper_ids, after.relevance, strict=True))
    for paper_id in SIMILAR:
        assert relevance_after[paper_id] > relevance_before[paper_id]
        assert "you liked" in after[after.paper_ids.index(paper_id)].reason
    unlike = set(relevance_before) - set(SIMILAR) - {0}
    assert unlike and all(relevance_after.get(paper_id, 0) == relevance_before[paper_id] for paper_id in unlike)
    assert set(after.paper_ids[:2]) == {2, 43}  # the two like the liked papers lead


def test_a_reader_without_liked_papers_is_matched_exactly_as_before(index):
    matcher = build_matcher(keywords='"neural representation", attention', interests="compressing videos")
    assert matcher.liked == ()
    assert liked_scores(matcher.liked, index.similarity) is None
    [first] = match_many([matcher], index)
    [again] = match_many([Matcher(**vars(matcher))], index)
    assert first == again


def test_the_count_in_the_reason_is_the_liked_papers_the_paper_is_similar_to(monkeypatch):
    similarity = PaperSimilarity(["graph neural networks for molecules", "video compression codecs", "gardening"])
    monkeypatch.setattr(liked, "TYPICAL_WEIGHT", 0.0)
    scores = liked_scores(["graph neural networks", "graph neural networks for molecules and proteins"], similarity)
    reasons = {reason: np.flatnonzero(row).tolist() for reason, row in scores.evidence}
    assert reasons == {"similar to 2 papers you liked": [0]}
    assert scores.unlike.tolist() == [False, True, True]


def test_a_chunks_liked_papers_read_together_give_each_the_row_it_gets_alone(seeds, monkeypatch):
    similarity = PaperSimilarity([paper_text(*paper) for paper in seeds[10:40]])
    texts = [paper_text(*paper) for paper in seeds[:10]]
    lists = [texts[:3], texts[2:7], (), texts[6:], texts[:1]]
    alone = {text: similarity.scores([text])[0] for text in texts}

    together = liked.liked_rows(lists, similarity)

    assert set(together) == set(texts)
    assert all(np.array_equal(together[text], alone[text]) for text in texts)
    # Past what the cache holds: at most that many new rows at once (liked_scores reads the
    # others alone), none of them kept.
    monkeypatch.setattr(liked, "MAX_CACHED_ROWS", 4)
    fresh = PaperSimilarity([paper_text(*paper) for paper in seeds[10:40]])
    liked.liked_rows([texts[:2]], fresh)
    overflowing = liked.liked_rows([texts[2:]], fresh)
    assert set(overflowing) == set(texts[:6])
    assert all(np.array_equal(overflowing[text], alone[text]) for text in overflowing)
    assert list(liked._rows[fresh]) == texts[:2]


@pytest.mark.django_db
def test_a_run_uses_the_liked_list_and_never_offers_a_liked_paper_back(seeds):
    papers = [make_paper(n, title, abstract) for n, (title, abstract) in enumerate(seeds)]
    reader = make_subscriber(keywords="", interests="")
    reader.topics.clear()
    add_liked_papers(reader, LikedInput(arxiv_ids=tuple(papers[n].arxiv_id for n in LIKED)))
    LikedPaper.objects.create(subscriber=reader, arxiv_id="2604.99999")  # waiting: not used yet

    match_recent_papers(reader.pk)

    offered = dict(Candidate.objects.filter(subscriber=reader).values_list("paper_id", "reason"))
    # The liked papers are in this batch too, which shifts the model a little: the two closest.
    assert {papers[2].pk, papers[43].pk} <= set(offered)
    assert not {papers[n].pk for n in LIKED} & set(offered)
    assert offered[papers[2].pk] == "Similar to 2 papers you liked"
    assert len(liked_texts(reader)) == 2
