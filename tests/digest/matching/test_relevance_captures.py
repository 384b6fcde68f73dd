"""bench/relevance.py reads the labelled papers' text from the real captures in ../shared/feeds,
including the two that are no feed: an OAI-PMH harvest in Dublin Core and the arXiv metadata
snapshot."""

from bench import relevance
from tests.support.shared import shared_feed

OAI_DC = "arxiv_oai-pmh_2015-04-24_oai_dc-ListRecords-2014-12-24_all-archives_897entries.xml"
SNAPSHOT = "arxiv_kaggle-metadata-snapshot_2022-03-31_first-200-lines-0704.0001-0704.0200_200entries.jsonl"


def test_a_dublin_core_harvest_gives_the_id_title_authors_and_abstract_of_every_record():
    papers = relevance.oai_dc_papers(shared_feed(OAI_DC))

    assert len(papers) == 897
    title, abstract, authors = papers["0709.2184"]
    assert title == "Irrationality measure and lower bounds for pi(x)"
    assert authors[0] == "David Burt" and authors[2] == "Steven J. Miller"
    assert abstract.startswith("In this note we show how the irrationality measure of $\\zeta(s) = \\pi^2/6$ can be")
    # The second dc:description holds the authors' comments, not the abstract.
    assert "Comment:" not in abstract and abstract.endswith("as a natural boundary.")


def test_the_metadata_snapshot_gives_the_id_title_authors_and_abstract_of_every_line():
    papers = relevance.metadata_snapshot_papers(shared_feed(SNAPSHOT))

    assert len(papers) == 200
    title, abstract, authors = papers["0704.0001"]
    assert title == "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies"
    assert authors == ("C. Balázs", "E. L. Berger", "P. M. Nadolsky", "C. -P. Yuan")
    assert abstract.startswith("A fully differential calculation in perturbative quantum chromodynamics is presented")


def test_captures_are_read_by_their_format():
    shared_feed(OAI_DC)
    arxiv_page = "arxiv_oai-pmh_2016-03-09_arXiv-ListRecords-set-cs-page93_1602-1603_1000entries.xml"

    assert relevance.source_papers(OAI_DC)["0709.2184"][0].startswith("Irrationality measure")
    assert relevance.source_papers(SNAPSHOT)["0704.0002"][0] == "Sparsity-certifying Graph Decompositions"
    assert len(relevance.source_papers(arxiv_page)) == 1000
