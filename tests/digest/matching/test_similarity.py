import numpy as np

from digest.matching.similarity import PaperSimilarity, analyze, interest_sentences, paper_text, wanted_text
from seeds.build_seed_feed import read_papers
from tests.support import ROOT

SEED_PAGE = ROOT / "seeds" / "trending-papers-page.txt"

PAPERS = [
    paper_text(
        "Neural video compression", "We compress videos with implicit neural representations and a fast decoder."
    ),
    paper_text(
        "Sparse autoencoders for interpretability",
        "Sparse autoencoders find interpretable features in language models.",
    ),
    paper_text("Linear attention", "A linear attention mechanism makes transformers efficient on long sequences."),
]


def test_analysis_keeps_stems_of_meaningful_words_only():
    assert analyze("I am interested in the representations of videos, 2024") == ["represent", "video"]


def test_a_description_is_most_similar_to_the_paper_about_it():
    similarity = PaperSimilarity(PAPERS)
    scores = similarity.scores(["compressing video with neural networks", "what features do language models learn"])
    assert scores.shape == (2, 3)
    assert scores[0].argmax() == 0
    assert scores[1].argmax() == 1


def test_scores_are_cosines_between_zero_and_one():
    similarity = PaperSimilarity(PAPERS)
    scores = similarity.scores([*PAPERS, "nothing in common whatsoever", ""])
    assert np.all(scores >= 0) and np.all(scores <= 1.0001)
    assert np.allclose(np.diag(scores[:3]), 1.0, atol=1e-5)
    assert not scores[3:].any()


def test_background_papers_change_the_weight_of_common_words():
    alone = PaperSimilarity(PAPERS).scores(["transformers"])[0, 2]
    among_many = PaperSimilarity(PAPERS, background=["transformers everywhere"] * 50).scores(
        ["efficient transformers"]
    )[0, 2]
    assert alone > 0 and among_many > 0
    assert (
        PaperSimilarity(PAPERS, background=["transformers"] * 50).model.idf.min()
        < PaperSimilarity(PAPERS).model.idf.min()
    )


def test_no_texts_give_an_empty_array():
    assert PaperSimilarity(PAPERS).scores([]).shape == (0, 3)


def test_sentences_saying_what_the_reader_does_not_want_are_left_out_of_an_interest():
    interest = (
        "I work on retrieval-augmented generation. I do not want chatbot case studies. "
        "Not image generation; plain DPO papers are only of side interest. Retrievers that don't need labels."
    )
    assert wanted_text(interest) == "I work on retrieval-augmented generation."


def test_an_interests_sentences_are_told_apart_into_wanted_and_unwanted():
    wanted, unwanted = interest_sentences("I work on RAG. Not chatbots; plain DPO is of side interest. Retrievers too.")
    assert wanted == ["I work on RAG.", "Retrievers too."]
    assert unwanted == ["Not chatbots;", "plain DPO is of side interest."]


def test_an_interest_saying_only_what_is_not_wanted_is_kept_whole():
    assert wanted_text("Nothing about robots, not games.") == "Nothing about robots, not games."


def test_bm25_scores_are_shares_of_the_most_a_text_could_score():
    similarity = PaperSimilarity(PAPERS)
    bm25 = similarity.meaning_scores(["linear attention transformers", "linear attention", "", "unrelated words"]).bm25
    assert np.all(bm25 >= 0) and np.all(bm25 < 1)
    assert bm25[0].argmax() == 2 and bm25[1].argmax() == 2
    assert not bm25[2:].any()


def test_bm25_weighs_rare_words_more_and_discounts_long_papers():
    papers = [
        "attention pruning",
        "attention pruning " + " ".join(f"filler{number}" for number in range(40)),
        "attention kernels",
        "attention sparsity",
    ]
    bm25 = PaperSimilarity(papers).meaning_scores(["attention pruning"]).bm25[0]
    # "pruning" is in two papers, "attention" in all four: a paper holding only "attention" scores little.
    assert bm25[0] > bm25[1] > bm25[2] == bm25[3] > 0


def test_a_texts_scores_do_not_depend_on_the_texts_compared_beside_it():
    """A chunk compares all its subscribers' interests with the papers at once: an interest's scores
    must be the same to the last bit in any chunk, or a paper on a cut-off comes and goes with the
    chunk's company (BLAS rounds a product of many rows differently with their number)."""
    pairs, _ = read_papers(SEED_PAGE.read_text(encoding="utf-8"))
    similarity = PaperSimilarity([paper_text(title, abstract) for title, abstract in pairs])
    assert similarity._term_space is not None  # enough papers for an LSA space: all three scores
    interests = [f"{title}. {abstract[:200]}" for title, abstract in pairs[:60]]
    together = similarity.meaning_scores(interests)
    for first, count in ((0, 1), (7, 1), (59, 1), (3, 7), (10, 33)):
        beside = similarity.meaning_scores(interests[first : first + count])
        for name, scores in beside._asdict().items():
            assert np.array_equal(scores, getattr(together, name)[first : first + count]), (name, first, count)
