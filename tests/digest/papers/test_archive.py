from datetime import UTC, date, datetime

import pytest
from django.urls import reverse

from digest.papers.archive import archive_days, papers_of_day
from tests.support.digest_samples import make_paper

pytestmark = pytest.mark.django_db


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def papers():
    return {
        "late": make_paper(0, "Late on the 17th", "a", published=at(17, 23, 59), upvotes=3),
        "top": make_paper(1, "Most upvoted of the 17th", "b", published=at(17, 0, 0), upvotes=120),
        "none": make_paper(2, "No upvotes on the 17th", "c", published=at(17), upvotes=0),
        "16th": make_paper(3, "Only one on the 16th", "d", published=at(16), upvotes=7),
        "undated": make_paper(4, "Undated", "e", published=None, upvotes=999),
    }


def test_the_archive_lists_days_newest_first_with_their_counts(papers):
    days = archive_days()

    assert [(d.day, d.papers, d.top_upvotes) for d in days] == [(date(2026, 3, 17), 3, 120), (date(2026, 3, 16), 1, 7)]


def test_a_days_papers_are_those_published_that_utc_day_most_upvoted_first(papers):
    assert list(papers_of_day(date(2026, 3, 17))) == [papers["top"], papers["late"], papers["none"]]


def test_the_archive_page_links_each_day(client, papers, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        response = client.get(reverse("digest:archive"))

    text = response.content.decode()
    assert response.status_code == 200
    assert text.index('href="/archive/2026-03-17/"') < text.index('href="/archive/2026-03-16/"')
    assert "3 papers" in text and "1 paper," in text


def test_the_day_page_shows_that_days_papers_by_upvotes(client, papers):
    response = client.get("/archive/2026-03-17/")

    text = response.content.decode()
    assert response.status_code == 200
    assert text.index("Most upvoted of the 17th") < text.index("Late on the 17th") < text.index("No upvotes")
    assert "Only one on the 16th" not in text and "Undated" not in text
    assert "▲ 120" in text


@pytest.mark.parametrize("day", ["2026-02-30", "2026-03-18"])
def test_an_impossible_or_empty_day_is_not_found(client, papers, day):
    assert client.get(f"/archive/{day}/").status_code == 404


def test_titles_are_escaped_on_the_day_page(client):
    make_paper(0, "<script>alert(1)</script>", "<b>x</b>", published=at(17))

    text = client.get("/archive/2026-03-17/").content.decode()

    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
