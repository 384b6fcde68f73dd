import re

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.cleaning import ArxivId, clean_abstract, clean_text, parse_arxiv_id, split_authors

TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")
# Text that feeds actually send: prose, markup, entities, escaped markup and odd whitespace.
feed_text = st.lists(
    st.one_of(
        st.text(max_size=20),
        st.sampled_from(
            ["<b>", "</b>", "<script>", "</script>", "<p class='x'>", "<br/>", "<!-- c -->", "&lt;", "&gt;",
             "&amp;", "&amp;lt;", "&nbsp;", "&#60;", "&#x3c;", "<", ">", "\n", "\t", "  ", "\x00", "<i", "p<0.05"]
        ),
    ),
    max_size=30,
).map("".join)


def test_it_strips_tags_and_decodes_entities():
    assert clean_text("Attention &amp; <b>memory</b> in <i>LLMs</i>") == "Attention & memory in LLMs"


def test_it_drops_script_content_and_escaped_tags():
    assert clean_text("a &lt;script&gt;alert(1)&lt;/script&gt; b <script>x()</script> c") == "a b c"


def test_it_keeps_a_less_than_sign_that_is_not_a_tag():
    assert clean_text("p<0.05 and x < y") == "p<0.05 and x < y"


def test_it_folds_whitespace_and_line_breaks():
    assert clean_text("  Titles can\n  contain line breaks\t and&nbsp;spaces ") == (
        "Titles can contain line breaks and spaces"
    )


def test_it_removes_the_arxiv_announce_prefix():
    raw = "arXiv:2604.21952v1 Announce Type: replace-cross \nAbstract: This work presents"
    assert clean_abstract(raw) == "This work presents"


def test_it_leaves_an_abstract_without_prefix_alone():
    assert clean_abstract("We study arXiv: a preprint server.") == "We study arXiv: a preprint server."


def test_it_splits_the_arxiv_rss_author_string():
    raw = "Weizhen Li,  Jianbo Lin, Plato, John Smith, Jr. and Ann  Lee"
    assert split_authors(raw) == ["Weizhen Li", "Jianbo Lin", "Plato", "John Smith, Jr.", "Ann Lee"]


def test_it_returns_no_authors_for_an_empty_string():
    assert split_authors("") == []
    assert split_authors(" , ") == []


def test_it_reads_arxiv_ids_in_every_form():
    assert parse_arxiv_id("oai:arXiv.org:2604.21952v1") == ArxivId("2604.21952", 1)
    assert parse_arxiv_id("http://arxiv.org/abs/2202.12139v1") == ArxivId("2202.12139", 1)
    assert parse_arxiv_id("https://arxiv.org/pdf/2202.12139v3") == ArxivId("2202.12139", 3)
    assert parse_arxiv_id("2202.12139") == ArxivId("2202.12139", None)
    assert parse_arxiv_id("arXiv:0704.0001v12") == ArxivId("0704.0001", 12)
    assert parse_arxiv_id("hep-th/9901001v2") == ArxivId("hep-th/9901001", 2)
    assert parse_arxiv_id("math.GT/0309136") == ArxivId("math.GT/0309136", None)


def test_it_rejects_what_is_not_an_arxiv_id():
    for value in ["", None, "https://example.com/2202.12139", "tag:blog,2024:post-1", "12345", "abc"]:
        assert parse_arxiv_id(value) is None


@settings(max_examples=300, deadline=None)
@given(feed_text)
def test_no_tag_survives_cleaning(raw):
    assert not TAG.search(clean_text(raw))


@settings(max_examples=300, deadline=None)
@given(feed_text)
def test_cleaning_is_idempotent(raw):
    once = clean_text(raw)
    assert clean_text(once) == once


@settings(max_examples=300, deadline=None)
@given(feed_text)
def test_cleaned_whitespace_is_folded(raw):
    cleaned = clean_text(raw)
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned
    assert not re.search(r"[\n\r\t\x00]", cleaned)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.from_regex(r"[A-Z][a-z]{1,8}( [A-Z][a-z]{1,8}){0,2}", fullmatch=True), min_size=1, max_size=8))
def test_joined_author_names_split_back(names):
    names = [n for n in names if n.lower() not in {"jr", "sr", "ii", "iii", "iv"} and " And " not in f" {n} "]
    if names:
        assert split_authors(", ".join(names)) == names
