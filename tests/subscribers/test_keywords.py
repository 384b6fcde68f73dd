import string

from hypothesis import given
from hypothesis import strategies as st

from subscribers.keywords import STOPWORDS, fold, occurs, parse_keywords, text_keys, words


def include_texts(raw):
    return [term.text for term in parse_keywords(raw).include]


def exclude_texts(raw):
    return [term.text for term in parse_keywords(raw).exclude]


def found(raw, text):
    [term] = parse_keywords(raw).include
    return occurs(term, text_keys(text))


def test_it_finds_singular_and_plural_through_the_lemma():
    assert found("representations", "We learn a compact neural representation of video.")
    assert found("representation", "Implicit neural representations store signals.")
    assert found("learned", "Learning representations")
    assert found('"optimizing models"', "We optimized models.")


def test_a_word_read_as_a_noun_does_not_find_its_derivations_or_other_words_sharing_a_stem():
    # Snowball stems all of these to one stem; only the noun's own inflections count.
    assert found("ranking", "Rankings of documents")
    assert not found("ranking", "Low-rank adapters")
    assert not found("ranking", "We ranked the candidates")
    assert not found("generalization", "A general method")
    assert not found("navigation", "Navigating large corpora")
    assert not found("learning", "Representations learned by networks")
    assert not found("tokenization", "We drop rare tokens")


def test_it_matches_a_quoted_phrase_only_when_its_words_are_adjacent():
    assert found('"neural field"', "Neural fields, also known as implicit neural representations")
    assert not found('"neural field"', "A neural network predicts the flow field.")


def test_an_acronym_does_not_match_inside_a_longer_word():
    assert not found("INR", "This work was done at INRIA Paris.")
    assert found("INR", "We fit an INR to every frame.")


def test_an_acronym_matches_its_plural_but_not_the_lower_case_word():
    assert found("INR", "Generative models of INRs")
    assert found("LLM", "Serving LLMs cheaply")
    assert not found("IT", "it is known that")
    assert found("IT", "IT departments")


def test_other_words_match_whatever_their_case():
    assert found("NeRF", "Neural radiance fields (NERF) and nerfs")
    assert found("nerf", "We extend NeRF to dynamic scenes.")
    assert found("transformer", "TRANSFORMERS everywhere")


def test_it_matches_at_word_boundaries_only():
    assert not found("art", "A partial solution")
    assert not found("cat", "concatenation of features")
    assert found("art", "state-of-the-art results")


def test_exclusions_are_words_or_phrases_with_a_leading_minus():
    raw = '"neural field", NeRF, -medical, -"diffusion MRI"'
    assert include_texts(raw) == ["neural field", "NeRF"]
    assert exclude_texts(raw) == ["medical", "diffusion MRI"]


def test_with_commas_each_item_is_one_term():
    assert include_texts("graph neural networks, NeRF") == ["graph neural networks", "NeRF"]
    assert exclude_texts("diffusion, -medical imaging") == ["medical imaging"]


def test_without_commas_spaces_separate_terms_and_quotes_make_phrases():
    assert include_texts('INR diffusion "scene flow"') == ["INR", "diffusion", "scene flow"]


def test_hyphenated_words_are_phrases():
    assert found("zero-shot", "a zero shot classifier")
    assert found("zero-shot", "zero-shot learning")


def test_a_lone_stopword_is_ignored_but_kept_inside_a_phrase():
    assert include_texts("the, of") == []
    assert found('"learning to rank"', "Learning to rank with transformers")
    assert not found('"learning to rank"', "learning how to rank")


def test_accents_are_folded():
    assert found("Pólya", "Polya urns")
    assert found("naive", "a naïve baseline")
    assert fold("Ångström") == "Angstrom"


def test_the_same_term_twice_counts_once_and_an_excluded_term_is_not_included():
    query = parse_keywords("attention, Attention, attentions, -attention")
    assert query.include == ()
    assert [term.text for term in query.exclude] == ["attention"]


def test_terms_parsed_without_their_forms_keep_the_same_terms_and_keys():
    raw = '"fine tuning", NeRF, optimisation, -medical, ~scene, the'
    full, bare = parse_keywords(raw), parse_keywords(raw, forms=False)
    for full_terms, bare_terms in (
        (full.include, bare.include),
        (full.exclude, bare.exclude),
        (full.fewer, bare.fewer),
    ):
        assert [(t.text, t.keys) for t in bare_terms] == [(t.text, t.keys) for t in full_terms]
    assert full.include[0].joined and full.include[0].surface
    assert bare.include[0].joined == () and bare.include[0].surface == ()


def test_an_unterminated_quote_still_gives_a_phrase():
    assert include_texts('"state space models') == ["state space models"]


@given(st.text(max_size=200))
def test_parsing_any_text_never_fails_and_gives_usable_terms(raw):
    query = parse_keywords(raw)
    for term in (*query.include, *query.exclude):
        assert term.keys and all(term.keys)
    assert not {term.keys for term in query.include} & {term.keys for term in query.exclude}


plain_word = st.text(alphabet=string.ascii_lowercase, min_size=3, max_size=10).filter(lambda w: w not in STOPWORDS)
phrase = st.lists(plain_word, min_size=1, max_size=3).map(" ".join)


@given(st.lists(phrase, min_size=1, max_size=6, unique=True), st.lists(phrase, max_size=3, unique=True))
def test_written_terms_parse_back_into_the_same_includes_and_excludes(included, excluded):
    raw = ", ".join([*(f'"{p}"' for p in included), *(f'-"{p}"' for p in excluded)])
    query = parse_keywords(raw)
    excluded_keys = {term.keys for term in parse_keywords(", ".join(f'"{p}"' for p in excluded)).include}
    assert {term.keys for term in query.exclude} == excluded_keys
    for term in query.include:
        assert term.keys not in excluded_keys
        assert term.text in included


@given(st.lists(st.text(alphabet=string.ascii_letters, min_size=1, max_size=12), min_size=1, max_size=30), st.data())
def test_any_run_of_words_taken_from_a_text_is_found_in_that_text(text_words, data):
    start = data.draw(st.integers(0, len(text_words) - 1))
    end = data.draw(st.integers(start + 1, min(len(text_words), start + 4)))
    chosen = " ".join(text_words[start:end])
    query = parse_keywords(f'"{chosen}"')
    text = " ".join(text_words)
    for term in query.include:
        assert occurs(term, text_keys(text))


@given(st.text(max_size=100))
def test_words_never_contain_separators(text):
    for word in words(text):
        assert word and all(ch.isalnum() for ch in word)
