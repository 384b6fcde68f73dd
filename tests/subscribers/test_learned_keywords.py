"""What "more/less like this" clicks wrote, shown on the manage page with an Undo button each.

The clicks go through the real feedback links; the undo through the manage page's form.
"""

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from digest.delivery.digest_email import feedback_url
from subscribers.keywords import parse_keywords, remove_keyword
from subscribers.models import Subscriber
from subscribers.services import learned_keywords, undo_learned_keyword
from subscribers.tokens import make_token
from tests.support.digest_samples import make_paper, make_subscriber, seed_papers

pytestmark = pytest.mark.django_db

TYPED = '"neural representation", videos, ~robots'


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()


@pytest.fixture
def papers():
    return [make_paper(index, title, abstract) for index, (title, abstract) in enumerate(seed_papers()[:20])]


def by_title(papers, start: str):
    return next(p for p in papers if p.title.startswith(start))


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def click(client: Client, subscriber: Subscriber, paper, direction: str) -> None:
    assert client.post(path_of(feedback_url(subscriber, paper.pk, direction))).status_code == 200
    subscriber.refresh_from_db()


def manage_path(subscriber: Subscriber) -> str:
    return reverse("subscribers:manage", args=[make_token(subscriber, "manage")])


def undo(client: Client, path: str, term: str):
    return client.post(path, {"action": "undo_learned", "term": term})


@pytest.fixture
def reader(papers):
    reader = make_subscriber(keywords=TYPED)
    client = Client()
    click(client, reader, by_title(papers, "HNeRV"), "less")  # writes ~hybrid
    # "More like this" used to write a title phrase (it now trains the reader's model only): such
    # terms are still listed and undone.
    reader.keywords += ', "circuit component"'
    reader.learned_keywords = [*reader.learned_keywords, '"circuit component"']
    reader.save(update_fields=["keywords", "learned_keywords"])
    return reader


def test_a_less_click_is_shown_and_undone(client, reader):
    assert reader.learned_keywords[0] == "~hybrid"
    page = client.get(manage_path(reader)).content.decode()
    # Listed once, beside the paper the click marked (that Undo takes back the whole click).
    assert "<code>hybrid</code>" in page and 'name="term" value="~hybrid"' not in page
    assert "More of" in page and f'value="{reader.learned_keywords[1]}"' in page.replace("&quot;", '"')

    response = undo(client, manage_path(reader), "~hybrid")

    assert response.status_code == 302 and response["Location"].endswith("?done=undone#learned")
    reader.refresh_from_db()
    assert "~hybrid" not in reader.keywords and "hybrid" not in [t.text for t in parse_keywords(reader.keywords).fewer]
    assert reader.learned_keywords == learned_keywords(reader) and len(reader.learned_keywords) == 1
    assert "<code>hybrid</code>" not in client.get(manage_path(reader)).content.decode()


def test_undoing_a_more_click_keeps_the_typed_keywords(client, reader):
    more = reader.learned_keywords[1]
    assert not more.startswith("~") and more in reader.keywords

    undo(client, manage_path(reader), more)

    reader.refresh_from_db()
    assert reader.keywords == f"{TYPED}, ~hybrid"
    assert reader.learned_keywords == ["~hybrid"]


def _old_more_click(reader: Subscriber, term: str, category: str) -> None:
    """What a "more" click wrote before clicks trained the reader's model: a term, and the
    paper's category when the reader did not have it (recorded so that the undo takes it out)."""
    reader.keywords += f", {term}"
    reader.learned_keywords = [*reader.learned_keywords, term]
    if category not in reader.categories:
        reader.categories = [*reader.categories, category]
    if category not in reader.categories[:-1] or category in reader.learned_categories.values():
        reader.learned_categories = {**reader.learned_categories, term: category}
    reader.save(update_fields=["keywords", "learned_keywords", "categories", "learned_categories"])


def test_undoing_a_more_click_takes_out_the_category_it_added(client):
    reader = make_subscriber(keywords=TYPED)
    _old_more_click(reader, '"circuit component"', "cs.CL")
    assert reader.categories == ["cs.CL"]

    undo(client, manage_path(reader), '"circuit component"')

    reader.refresh_from_db()
    assert reader.categories == [] and reader.learned_categories == {}
    assert reader.keywords == TYPED


def test_a_category_the_reader_chose_stays_when_the_click_is_undone(client):
    reader = make_subscriber(keywords=TYPED, categories=["cs.CL"])
    reader.keywords += ', "circuit component"'
    reader.learned_keywords = ['"circuit component"']
    reader.save(update_fields=["keywords", "learned_keywords"])

    undo(client, manage_path(reader), reader.learned_keywords[0])

    reader.refresh_from_db()
    assert reader.categories == ["cs.CL"] and reader.learned_keywords == []


def test_a_category_two_more_clicks_asked_for_goes_with_the_last_undo(client):
    reader = make_subscriber(keywords=TYPED)
    _old_more_click(reader, '"circuit component"', "cs.CL")
    _old_more_click(reader, '"video captioning"', "cs.CL")
    first, second = reader.learned_keywords
    assert reader.learned_categories == {first: "cs.CL", second: "cs.CL"} and reader.categories == ["cs.CL"]

    undo(client, manage_path(reader), first)
    reader.refresh_from_db()
    assert reader.categories == ["cs.CL"] and reader.learned_categories == {second: "cs.CL"}

    undo(client, manage_path(reader), second)
    reader.refresh_from_db()
    assert reader.categories == [] and reader.learned_categories == {}


def test_undo_twice_is_harmless(client, reader):
    undo(client, manage_path(reader), "~hybrid")
    reader.refresh_from_db()
    after_first = (reader.keywords, reader.learned_keywords)

    response = undo(client, manage_path(reader), "~hybrid")

    assert response.status_code == 302
    reader.refresh_from_db()
    assert (reader.keywords, reader.learned_keywords) == after_first
    assert undo_learned_keyword(reader, "~hybrid") is False


def test_the_readers_own_typed_terms_cannot_be_undone(client, reader):
    before = (reader.keywords, reader.learned_keywords)

    for term in ["~robots", "videos", '"neural representation"', "~nothere", ""]:
        undo(client, manage_path(reader), term)

    reader.refresh_from_db()
    assert (reader.keywords, reader.learned_keywords) == before


def test_another_subscribers_token_changes_nothing(client, reader):
    other = make_subscriber(email="other@example.org", keywords="attention")

    undo(client, manage_path(other), "~hybrid")

    reader.refresh_from_db()
    other.refresh_from_db()
    assert "~hybrid" in reader.keywords and "~hybrid" in reader.learned_keywords
    assert other.keywords == "attention" and other.learned_keywords == []


def test_a_tampered_token_changes_nothing(client, reader):
    before = (reader.keywords, reader.learned_keywords)
    token = make_token(reader, "manage")
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")

    response = undo(client, reverse("subscribers:manage", args=[tampered]), "~hybrid")

    assert response.status_code == 400
    reader.refresh_from_db()
    assert (reader.keywords, reader.learned_keywords) == before


def test_a_post_without_the_csrf_token_changes_nothing(reader):
    before = (reader.keywords, reader.learned_keywords)
    strict = Client(enforce_csrf_checks=True)

    response = undo(strict, manage_path(reader), "~hybrid")

    assert response.status_code == 403
    reader.refresh_from_db()
    assert (reader.keywords, reader.learned_keywords) == before


def test_a_term_the_reader_deleted_by_hand_is_no_longer_listed(reader):
    reader.keywords = remove_keyword(reader.keywords, "~hybrid")

    assert "~hybrid" not in learned_keywords(reader)


def test_removing_a_keyword_takes_only_that_item():
    assert remove_keyword('"neural field", NeRF, ~scene', "~scene") == '"neural field", NeRF'
    assert remove_keyword('"neural field", NeRF, ~scene', "scene") == '"neural field", NeRF, ~scene'
    assert remove_keyword("NeRF ~scene -medical", "~scene") == "NeRF, -medical"
    assert remove_keyword("graph neural networks, ~scene", "~scene") == '"graph neural networks"'
    assert remove_keyword("~scene", "~scene") == ""
    assert remove_keyword('NeRF, "open', "NeRF") == '"open"'
