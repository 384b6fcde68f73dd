"""Papers marked "more/less like this" in digests, on the manage page: what the digest learned
("More like: 1 paper; less of: 1 paper"), each with an Undo that takes back everything the click did."""

import pytest
from django.core.cache import cache
from django.urls import reverse

from digest.matching.feedback import apply_feedback
from digest.models import MarkedPaper, ReaderModel
from subscribers.keywords import parse_keywords
from subscribers.tokens import make_token
from tests.support.digest_samples import make_paper, make_subscriber, seed_papers

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()


@pytest.fixture
def papers():
    return [make_paper(index, title, abstract) for index, (title, abstract) in enumerate(seed_papers()[:20])]


@pytest.fixture
def reader(papers):
    """A reader who marked one paper "more" and one "less": enough examples for their own model."""
    reader = make_subscriber(keywords="videos")
    apply_feedback(reader, papers[0], "more")
    apply_feedback(reader, papers[1], "less")
    reader.refresh_from_db()
    return reader


def manage_path(subscriber) -> str:
    return reverse("subscribers:manage", args=[make_token(subscriber, "manage")])


def undo_path(subscriber, marked_id: int) -> str:
    return reverse("digest:undo_marked", args=[make_token(subscriber, "manage"), marked_id])


def test_the_manage_page_says_what_the_clicks_taught_with_an_undo_each(client, reader, papers):
    page = client.get(manage_path(reader)).content.decode()

    assert "More like: 1 paper; less of: 1 paper." in page
    for marked in MarkedPaper.objects.filter(subscriber=reader):
        assert f"/marked/{marked.pk}/undo/" in page
    assert papers[0].title in page and papers[1].title in page


def test_a_reader_who_never_clicked_sees_no_marked_papers(client):
    reader = make_subscriber()

    assert "Marked in your digests" not in client.get(manage_path(reader)).content.decode()


def test_undoing_a_less_click_takes_back_its_term_its_row_and_the_model(client, reader):
    less = MarkedPaper.objects.get(subscriber=reader, direction="less")
    assert less.keyword and less.keyword in reader.keywords
    assert ReaderModel.objects.filter(subscriber=reader).exists()

    response = client.post(undo_path(reader, less.pk))

    assert response.status_code == 302 and "done=unmarked" in response["Location"]
    reader.refresh_from_db()
    assert not parse_keywords(reader.keywords).fewer and "videos" in reader.keywords
    assert list(MarkedPaper.objects.filter(subscriber=reader).values_list("direction", flat=True)) == ["more"]
    # One example left: too few for a model, so what the click taught is gone too.
    assert not ReaderModel.objects.filter(subscriber=reader).exists()
    page = client.get(response["Location"]).content.decode()
    assert "More like: 1 paper; less of: 0 papers." in page and "no longer learns from that click" in page


def test_undo_twice_is_harmless(client, reader):
    more = MarkedPaper.objects.get(subscriber=reader, direction="more")
    client.post(undo_path(reader, more.pk))

    again = client.post(undo_path(reader, more.pk))

    assert again.status_code == 404
    assert MarkedPaper.objects.filter(subscriber=reader).count() == 1


def test_another_subscribers_link_undoes_nothing(client, reader):
    stranger = make_subscriber(email="stranger@example.com")
    more = MarkedPaper.objects.get(subscriber=reader, direction="more")

    response = client.post(undo_path(stranger, more.pk))

    assert response.status_code == 404
    assert MarkedPaper.objects.filter(subscriber=reader).count() == 2


def test_opening_an_undo_link_changes_nothing(client, reader):
    more = MarkedPaper.objects.get(subscriber=reader, direction="more")

    assert client.get(undo_path(reader, more.pk)).status_code == 405
    assert MarkedPaper.objects.filter(subscriber=reader).count() == 2


def test_a_less_click_term_is_listed_once_with_its_paper(client, reader):
    less = MarkedPaper.objects.get(subscriber=reader, direction="less")
    word = less.keyword.lstrip("~")

    page = client.get(manage_path(reader)).content.decode()

    assert f"<code>{word}</code>" in page
    assert f'value="{less.keyword}"' not in page  # no second Undo that takes back the term alone
    assert "Learned from your clicks" not in page


def test_a_term_written_before_marked_papers_existed_keeps_its_own_undo(client, reader):
    MarkedPaper.objects.filter(subscriber=reader, direction="less").update(keyword="")

    page = client.get(manage_path(reader)).content.decode()

    assert "Learned from your clicks" in page and "undo_learned" in page
