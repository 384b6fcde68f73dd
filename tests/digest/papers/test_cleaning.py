import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.papers.cleaning import (
    OVERLONG_VERSION,
    ArxivId,
    clean_abstract,
    clean_line,
    clean_text,
    cut_text,
    parse_arxiv_id,
    split_authors,
)

TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")
# Text that feeds actually send: prose, markup, entities, escaped markup and odd whitespace.
feed_text = st.lists(
    st.one_of(
        st.text(max_size=20),
        st.sampled_from(
            [
                "<b>",
                "</b>",
                "<script>",
                "</script>",
                "<p class='x'>",
                "<br/>",
                "<!-- c -->",
                "&lt;",
                "&gt;",
                "&amp;",
                "&amp;lt;",
                "&nbsp;",
                "&#60;",
                "&#x3c;",
                "<",
                ">",
                "\n",
                "\t",
                "  ",
                "\x00",
                "<i",
                "p<0.05",
            ]
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


def test_cut_text_leaves_short_text_alone_and_ends_a_cut_with_an_ellipsis():
    assert cut_text("short", 5) == "short"
    assert cut_text("a longer sentence", 9) == "a longer\u2026"
    assert cut_text("word " * 10, 6) == "word\u2026"  # no dangling space before the ellipsis


def test_cut_text_never_parts_an_accent_from_its_letter():
    assert cut_text("cafe\u0301 cafe\u0301", 6) == "cafe\u0301\u2026"
    assert cut_text("cafe\u0301 cafe\u0301", 5) == "caf\u2026"


@given(st.text(), st.integers(min_value=1, max_value=50))
def test_a_cut_text_fits_its_limit_and_encodes(text, limit):
    cut = cut_text(clean_text(text), limit)
    assert len(cut) <= limit
    cut.encode("utf-8")


def test_clean_text_drops_nul_control_characters_and_lone_surrogates_with_or_without_markup():
    assert clean_text("a\x00b\x07c\ud800d\udfffe") == "a b c d e"
    assert clean_text("<b>a\x00b</b>\ud800 c") == "a b c"


@pytest.mark.parametrize("value", [12345, 1.5, ["a"], {"a": 1}, True])
def test_clean_text_reads_no_text_from_a_json_value_of_another_type(value):
    assert clean_text(value) == "" and clean_abstract(value) == "" and split_authors(value) == []


def test_clean_line_keeps_an_id_as_sent_minus_controls_and_surrogates():
    assert clean_line(" https://lab.example/p/\x001\ud800 ") == "https://lab.example/p/ 1"
    assert clean_line(7) == ""


def test_an_arxiv_version_too_long_to_convert_comes_back_out_of_range():
    assert parse_arxiv_id("2612.77777v" + "9" * 5000) == ArxivId("2612.77777", OVERLONG_VERSION)
    assert parse_arxiv_id("2612.77777v" + "1" + "0" * 30).version == OVERLONG_VERSION
    assert parse_arxiv_id("2612.77777v123456789") == ArxivId("2612.77777", 123456789)


def test_an_old_style_arxiv_id_with_an_endless_archive_is_no_arxiv_id():
    assert parse_arxiv_id("a" * 100_000 + "/0101001") is None
    assert parse_arxiv_id("cond-mat.stat-mech/0101001") is None
    assert parse_arxiv_id("cond-mat/0101001v2") == ArxivId("cond-mat/0101001", 2)
