"""Each keyword rule, through the engine a matching run uses: which of a batch's papers a keyword finds."""

from datetime import UTC, datetime

from digest.matching.engine import BatchIndex, PaperDoc, build_matcher, match_many
from subscribers.keywords import parse_keywords

NOW = datetime(2026, 11, 26, 8, tzinfo=UTC)


def matched(keywords, papers):
    """The ids of the papers a keyword string makes candidates of, in id order."""
    [matches] = match_many([build_matcher(keywords=keywords)], BatchIndex(papers, now=NOW), keep=1000)
    return sorted(matches.paper_ids)


def found(keywords, *texts, background=()):
    """The texts a keyword string finds, in the given order. Each text is a paper's title and its
    abstract, so that these tests see which forms are found, not how strongly (see the last tests)."""
    papers = [PaperDoc(id=number, title=text, abstract=text, published=NOW) for number, text in enumerate(texts)]
    return [texts[paper_id] for paper_id in matched(keywords, papers)]


def test_inflections_match_through_the_stemmer():
    texts = [
        "Graphs. We represent molecules as graphs.",
        "Tokens. A graph of tokens.",
        "Learning. Models learned to optimize.",
        "Unrelated. Nothing here.",
    ]
    assert found("graph", *texts) == texts[:2]
    assert found("learning", *texts) == [texts[2]]
    optimized = "Optimized model. We optimized models."
    assert found('"optimizing models"', optimized) == [optimized]


def test_hyphenated_spaced_and_joined_forms_find_each_other():
    texts = [
        "Fine-tuning. We study fine-tuning of LLMs.",
        "Fine tuning. A study of fine tuning.",
        "Finetuning. Finetuning is cheap.",
        "Fine art. A fine result after tuning.",
    ]
    for keyword in ("fine-tuning", '"fine tuning"', "finetuning", "fine-tuned"):
        assert found(keyword, *texts) == texts[:3], keyword
    multimodal = ["A. Multi-modal models.", "B. Multimodal models.", "C. Multi modal models.", "D. Multiple modes."]
    assert found("multimodal", *multimodal) == multimodal[:3]
    assert found("multi-modal", *multimodal) == multimodal[:3]


def test_a_word_is_not_split_into_pieces_no_paper_writes_side_by_side():
    assert found("together", "A. We get her to the lab.", "B. Together we stand.") == ["B. Together we stand."]


def test_british_and_american_spellings_match_each_other():
    texts = [
        "Optimisation. Regularised modelling of behaviour.",
        "Optimization. Regularized modeling of behavior.",
        "Tokenisation. We tokenise text.",
        "Tokenization. We tokenize text.",
    ]
    assert found("optimization", *texts) == texts[:2]
    assert found("optimisation", *texts) == texts[:2]
    assert found('"regularized modelling"', *texts) == texts[:2]
    assert found("behaviour", *texts) == texts[:2]
    assert found("tokenization", *texts) == texts[2:]


def test_an_acronym_finds_its_expansion_as_the_batch_defines_it():
    texts = [
        "Video INRs. Implicit neural representations (INRs) compress video.",
        "Signals as functions. We fit an implicit neural representation to each image.",
        "INR at scale. We train an INR per shape.",
        "Neural networks. Representations of implicit knowledge in neural networks.",
    ]
    assert found("INR", *texts) == texts[:3]
    assert found('"implicit neural representation"', *texts) == texts[:3]


def test_an_acronym_keeps_to_its_usual_meaning_in_the_batch():
    texts = [
        "Robots. We train robots with reinforcement learning (RL).",
        "Agents. Reinforcement learning (RL) for games.",
        "Trading. Deep reinforcement learning (RL) for markets.",
        "Features. Representation learning (RL) with contrastive losses.",
        "Self-supervision. We study representation learning for images.",
    ]
    assert found("RL", *texts) == texts[:4]
    # A paper that defines RL as representation learning is not about reinforcement learning.
    assert found('"reinforcement learning"', *texts) == texts[:3]


def test_short_all_capital_acronyms_are_case_sensitive():
    texts = ["A. We fine-tune an LLM.", "B. The llm package.", "C. At INRIA we fit an inr.", "D. INRs for video."]
    assert found("LLM", *texts) == [texts[0]]
    assert found("INR", *texts) == [texts[3]]
    assert found("llm", *texts) == texts[:2]


def test_phrases_match_only_with_their_words_in_order():
    texts = [
        "A. Neural fields for video.",
        "B. The field of neural rendering.",
        "C. A neural network predicts the flow field.",
        "D. Neural scene flow fields.",
    ]
    assert found('"neural field"', *texts) == [texts[0]]
    assert found('"scene flow field"', *texts) == [texts[3]]


def test_an_exclusion_can_be_a_phrase_and_vetoes_only_that_phrase():
    texts = [
        "A. Diffusion models for images.",
        "B. Diffusion MRI of the brain.",
        "C. Diffusion of MRI scanners in hospitals, studied with diffusion models.",
    ]
    assert found('diffusion, -"diffusion MRI"', *texts) == [texts[0], texts[2]]
    assert found("diffusion, -MRI", *texts) == [texts[0]]


def test_a_tilde_asks_for_fewer_and_an_exclusion_wins_over_it():
    query = parse_keywords('"neural field", ~scene, -medical, ~"flow prior", ~medical')
    assert [term.text for term in query.include] == ["neural field"]
    assert [term.text for term in query.exclude] == ["medical"]
    assert [term.text for term in query.fewer] == ["scene", "flow prior"]
    assert [term.text for term in parse_keywords("NeRF ~scene").fewer] == ["scene"]


def paper(number, title, abstract):
    return PaperDoc(id=number, title=title, abstract=abstract, published=NOW)


def test_a_keyword_written_as_typed_counts_anywhere_and_another_form_only_in_the_title():
    papers = [
        paper(0, "Sparse autoencoders at scale", "We train dictionaries."),
        paper(1, "Dictionary learning", "We train sparse autoencoders on activations."),
        paper(2, "A sparse autoencoder for proteins", "One model per family."),
        paper(3, "Protein language models", "A sparse autoencoder reads the residual stream."),
    ]
    assert matched('"sparse autoencoders"', papers) == [0, 1, 2]
    # Hyphen or space is the same writing; a joined or split spelling is another form.
    hyphen = [paper(0, "Scaling", "We study fine-tuning."), paper(1, "Scaling", "We study finetuning.")]
    assert matched('"fine tuning"', hyphen) == [0]
    # An acronym's plural is another form than the capitals typed.
    assert matched("MLP", [paper(0, "Nets", "An MLP."), paper(1, "Nets", "Two MLPs.")]) == [0]


def test_two_keywords_each_found_only_in_another_form_make_a_match_together():
    papers = [
        paper(0, "Mechanisms", "Sparse autoencoders find circuits."),
        paper(1, "Mechanisms", "Sparse autoencoders find features."),
    ]
    assert matched('"sparse autoencoder", circuit', papers) == [0]


def test_a_keyword_most_papers_of_a_large_batch_hold_counts_only_in_titles():
    common = [paper(number, f"Topic {number}", "We prompt an LLM.") for number in range(40)]
    rare = [paper(40 + number, f"Other {number}", "No such word.") for number in range(20)]
    titled = [paper(60, "LLM serving", "Batching requests.")]
    assert matched("LLM", [*common, *rare, *titled]) == [60]
    # In a small batch a share says little: the abstracts count.
    assert matched("LLM", [*common[:3], *rare[:3], *titled]) == [0, 1, 2, 60]
    # Beside a second keyword it still counts.
    both = [paper(61, "Graphs", "We prompt an LLM over knowledge graphs.")]
    assert matched('LLM, "knowledge graph"', [*common, *rare, *both]) == [61]


def test_a_paper_that_defines_the_acronym_typed_counts_as_writing_it():
    papers = [
        paper(0, "Video codecs", "Implicit neural representations (INRs) store videos."),
        paper(1, "Video codecs", "We compare INRs with codecs."),
    ]
    assert matched("INR", papers) == [0]


def test_how_one_reader_wrote_a_keyword_does_not_decide_its_weight_for_another():
    papers = [
        paper(0, "Graph colouring", "We solve the problem of colouring graphs."),
        paper(1, "Scheduling", "Open problems in scheduling."),
    ]
    alone = [matched("problems", papers), matched("problem", papers)]
    assert alone == [[1], [0]]  # each counts only where written as typed (the rule above)
    index = BatchIndex(papers, now=NOW)
    for readers in ([0, 1], [1, 0]):
        found = match_many([build_matcher(keywords=["problems", "problem"][n]) for n in readers], index, keep=1000)
        assert [sorted(matches.paper_ids) for matches in found] == [alone[n] for n in readers]
