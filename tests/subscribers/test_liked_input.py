import time

import pytest

from subscribers.liked_input import (
    MAX_BIBTEX_BYTES,
    MAX_PAPERS_PER_INPUT,
    LikedInput,
    LikedInputError,
    parse_bibtex,
    parse_liked_text,
)

BIBTEX = rb"""
@string{arxiv = "arXiv preprint"}
@article{vaswani2017attention,
  title   = {Attention Is {A}ll You Need},
  author  = "Vaswani, Ashish and Shazeer, Noam",
  journal = {arXiv preprint arXiv:1706.03762},
  year    = 2017,
}
@misc{edge2024graphrag, title="From Local to Global: A {G}raph {RAG} Approach", eprint={2404.16130v2},
      archivePrefix={arXiv}, primaryClass={cs.CL}}
@inproceedings{old, title = {Dual string theory}, url = {https://arxiv.org/abs/hep-th/9901001v1}}
@misc{doi, title = {By its DOI}, doi = {10.48550/arXiv.2410.05254}}
@inproceedings{no-arxiv, title = {Deep Residual Learning for {\"I}mage Recognition}, booktitle = {CVPR}}
@comment{ JabRef leaves these }
"""


def test_it_reads_ids_in_every_form_people_paste_them():
    liked = parse_liked_text(
        "2410.05254v2\n"
        "- https://arxiv.org/abs/hep-th/9901001v1, arXiv:2410.07113\n"
        "https://arxiv.org/pdf/1706.03762v7.pdf 0704.0001\n"
        "  math.GT/0309136  \n\n"
    )
    assert liked.arxiv_ids == (
        "2410.05254",
        "hep-th/9901001",
        "2410.07113",
        "1706.03762",
        "0704.0001",
        "math.GT/0309136",
    )
    assert liked.titles == ()


def test_a_line_that_is_not_an_id_is_an_exact_title():
    liked = parse_liked_text("Attention Is All You Need\n1. GraphRAG: Unlocking LLM discovery\n2410.05254")
    assert liked == LikedInput(
        arxiv_ids=("2410.05254",), titles=("Attention Is All You Need", "GraphRAG: Unlocking LLM discovery")
    )


def test_repeats_count_once():
    assert parse_liked_text("2410.05254\n2410.05254v3\narXiv:2410.05254").arxiv_ids == ("2410.05254",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2410.05254\nhttps://example.org/paper.pdf", "Line 2, “https://example.org/paper.pdf”, is not an arXiv id"),
        ("arXiv:24.1", "is not an arXiv id we can read"),
        ("2410.05254v0", "is not an arXiv id we can read"),
        ("hello", "Line 1, “hello”, is neither an arXiv id nor a paper's full title"),
        ("2410.05254\x00", "Please paste plain text"),
        ("x" * 20_001, "more than 20,000 characters"),
    ],
)
def test_garbage_is_refused_whole_with_a_message_naming_the_line(text, message):
    with pytest.raises(LikedInputError, match=message) as refused:
        parse_liked_text(text)
    assert str(refused.value).endswith("Nothing was saved.")


def test_ten_thousand_ids_are_refused_quickly():
    ids = " ".join(f"2410.{number:05d}" for number in range(10_000))
    started = time.perf_counter()
    with pytest.raises(LikedInputError):
        parse_liked_text(ids)
    with pytest.raises(LikedInputError, match=f"at most {MAX_PAPERS_PER_INPUT} papers at a time"):
        parse_liked_text(" ".join(ids.split()[:1_500]))
    assert time.perf_counter() - started < 2


def test_it_reads_a_bibtex_file_by_eprint_url_doi_and_journal_then_title():
    liked = parse_bibtex(BIBTEX)
    assert liked.arxiv_ids == ("1706.03762", "2404.16130", "hep-th/9901001", "2410.05254")
    assert liked.titles == ("Deep Residual Learning for Image Recognition",)


def test_an_eprint_of_another_archive_is_not_an_arxiv_id():
    liked = parse_bibtex(b"@article{a, title={A paper on physics}, eprint={2410.05254}, archiveprefix={SSRN}}")
    assert liked == LikedInput(titles=("A paper on physics",))


def test_a_latin1_bibtex_file_is_read():
    liked = parse_bibtex("@book{b, title = {Théorie des équations}}".encode("latin-1"))
    assert liked.titles == ("Théorie des équations",)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a BibTeX file"),
        (bytes(range(1, 32)) * 10, "not a BibTeX file"),
        (b"just some notes, no entries", "no BibTeX entries"),
        (b"@article{a, author={Nobody}}\n@misc{b, title={A fine title}}", "1 of the file's 2 entries have neither"),
        (b" " * (MAX_BIBTEX_BYTES + 1), "larger than 1 MB"),
    ],
)
def test_a_file_that_is_not_usable_bibtex_is_refused_whole(data, message):
    with pytest.raises(LikedInputError, match=message):
        parse_bibtex(data)


def _entries(size: int) -> bytes:
    return b"".join(b"@misc{k%d, eprint = {2410.%05d}}\n" % (n, n) for n in range(30_000))[:size]


def _unclosed(size: int) -> bytes:
    return b"@misc{k, title = {" + b"{" * (size - 100)


def _refusal_seconds(data: bytes) -> float:
    """The best of three times `parse_bibtex` takes to refuse `data`."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        with pytest.raises(LikedInputError):
            parse_bibtex(data)
        times.append(time.perf_counter() - started)
    return min(times)


@pytest.mark.parametrize("make", [_entries, _unclosed], ids=["thousands of entries", "unclosed braces"])
def test_a_hostile_file_is_refused_in_time_linear_in_its_size(make):
    """Measured against the same input an eighth as large, so a slow or busy machine does not
    matter: linear parsing takes about 8 times as long, quadratic about 64 times."""
    full, eighth = make(MAX_BIBTEX_BYTES), make(MAX_BIBTEX_BYTES // 8)
    ratio = _refusal_seconds(full) / max(_refusal_seconds(eighth), 1e-4)
    assert ratio < 24


def test_a_file_of_thousands_of_entries_is_refused_for_its_count():
    with pytest.raises(LikedInputError, match=f"more than {MAX_PAPERS_PER_INPUT} papers"):
        parse_bibtex(_entries(MAX_BIBTEX_BYTES))


def test_it_round_trips_through_a_task_message():
    liked = parse_liked_text("2410.05254\nAttention Is All You Need")
    assert LikedInput.from_data(liked.to_data()) == liked
