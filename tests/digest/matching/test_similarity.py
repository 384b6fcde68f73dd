import numpy as np

from digest.matching.similarity import PaperSimilarity, analyze, paper_text

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
