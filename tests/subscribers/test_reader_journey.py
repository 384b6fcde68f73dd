"""The reader's journey past the first signup: a used or replaced confirmation link, a throttled
one, the keywords' limit, and when the next digest comes, on the reader's own clock."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.utils import timezone

from subscribers import services
from subscribers.models import Subscriber
from subscribers.scheduling import next_delivery_text, schedule_subscriber
from tests.support.signup import form

pytestmark = pytest.mark.django_db

Status = Subscriber.Status


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    cache.clear()
    settings.SIGNUP_RATE_PER_ADDRESS = 100


def sign_up(client, committed, **overrides):
    with committed():
        return client.post("/", form(**overrides))


def links(name: str) -> list[str]:
    return [re.search(rf"http://[^/]+(/{name}/[^/\s]+/)", message.body).group(1) for message in mail.outbox]


def reader() -> Subscriber:
    return Subscriber.objects.get(email="ada@example.org")


# --- A confirmation link works once ---------------------------------------------------------------


def test_a_used_confirmation_link_says_already_confirmed_and_offers_no_confirm_button(client, committed):
    sign_up(client, committed)
    [confirm] = links("confirm")
    client.post(confirm)
    for answer in (client.get(confirm), client.post(confirm)):
        page = answer.content.decode()
        assert answer.status_code == 200 and "Already confirmed" in page
        assert "<button" not in page.split("<main", 1)[-1]
    assert reader().status == Status.ACTIVE


def test_a_used_confirmation_link_never_reactivates_an_unsubscribed_reader(client, committed):
    sign_up(client, committed)
    [confirm] = links("confirm")
    client.post(confirm)
    services.unsubscribe(reader())

    answer = client.post(confirm)
    assert answer.status_code == 200 and "This link was used" in answer.content.decode()
    assert "Resubscribe" in answer.content.decode()  # where to go instead
    assert reader().status == Status.UNSUBSCRIBED


def test_nor_does_it_once_an_operator_made_the_address_pending_again_within_the_hour(client, committed):
    sign_up(client, committed)
    [confirm] = links("confirm")
    client.post(confirm)
    services.unsubscribe(reader())
    with committed():
        services.subscribe_by_operator("ada@example.org", services.Preferences(keywords="x"), confirmed=False)
    assert reader().status == Status.PENDING and len(mail.outbox) == 1, "throttled: no new link was sent"

    assert "This link was used" in client.post(confirm).content.decode()
    assert reader().status == Status.PENDING


def test_a_replaced_confirmation_link_points_to_the_newest_email(client, committed):
    with time_machine.travel(timezone.now() - timedelta(hours=2)):
        sign_up(client, committed)
    sign_up(client, committed)  # an hour later: a new link, and the first one is replaced
    first, newest = links("confirm")

    assert "A newer link replaced this one" in client.post(first).content.decode()
    assert reader().status == Status.PENDING
    assert client.post(newest).status_code == 302
    assert reader().status == Status.ACTIVE


# --- A throttled confirmation says so --------------------------------------------------------------


def test_a_second_signup_within_the_hour_sends_nothing_and_the_page_says_the_first_link_still_works(client, committed):
    sign_up(client, committed)
    answer = sign_up(client, committed)
    assert len(mail.outbox) == 1
    page = client.get(answer.headers["Location"]).content.decode()
    assert "nothing new was sent: the link in the email that came earlier still works" in page
    [confirm] = links("confirm")
    assert client.post(confirm).status_code == 302


# --- The keywords' limit ----------------------------------------------------------------------------


def test_the_keywords_field_shows_its_limit_and_no_maxlength_that_would_cut_pasted_text(client):
    page = client.get("/").content.decode()
    field = re.search(r'<input[^>]*name="keywords"[^>]*>', page).group(0)
    assert 'data-limit="500"' in field and "maxlength" not in field
    assert "Up to 500 characters." in page


def test_keywords_over_the_limit_are_refused_whole_never_cut(client, committed):
    long = ", ".join(f"word{n}" for n in range(120))[:612]
    answer = sign_up(client, committed, keywords=long)
    page = answer.content.decode()
    assert answer.status_code == 400
    assert "This is 612 characters long and the limit is 500. Nothing was cut" in page
    assert f'value="{long}"' in page
    assert not Subscriber.objects.exists()


# --- When the next digest comes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Europe/Paris", "tomorrow, Saturday 5 December, at 08:00 (Europe/Paris time)"),
        ("America/Los_Angeles", "today, Friday 4 December, at 08:00 (America/Los_Angeles time)"),
        ("Asia/Tokyo", "on Monday 7 December at 08:00 (Asia/Tokyo time)"),
    ],
)
def test_the_next_delivery_is_told_on_the_readers_own_clock(zone, expected):
    # 15:00 UTC: 16:00 in Paris (08:00 has passed), 07:00 in Los Angeles, Saturday 00:00 in Tokyo.
    with time_machine.travel("2026-12-04 15:00Z", tick=False):
        subscriber = Subscriber.objects.create(email="x@example.org", status=Status.ACTIVE, timezone=zone)
        if zone == "Asia/Tokyo":
            subscriber.frequency, subscriber.weekday = Subscriber.Frequency.WEEKLY, 0
        schedule_subscriber(subscriber)
        assert next_delivery_text(subscriber) == expected


def test_nothing_is_told_when_nothing_is_due():
    paused = Subscriber.objects.create(email="x@example.org", status=Status.PAUSED)
    assert next_delivery_text(paused) == ""


def test_confirming_says_when_the_first_digest_arrives_and_the_manage_page_keeps_saying_it(client, committed):
    with time_machine.travel("2026-12-04 15:00Z", tick=False):
        sign_up(client, committed, timezone="Europe/Paris", delivery_hour="7")
        [confirm] = links("confirm")
        with committed():
            done = client.post(confirm)
        page = client.get(done.headers["Location"]).content.decode()
        assert (
            "You&#x27;re subscribed. Your first digest arrives tomorrow, Saturday 5 December, at 07:00 "
            "(Europe/Paris time)." in page
        )
        manage = client.get(done.headers["Location"].split("?")[0]).content.decode()
        assert "Your next digest is due tomorrow, Saturday 5 December, at 07:00 (Europe/Paris time)" in manage


def test_no_text_preference_carries_a_maxlength_and_the_authors_are_counted_in_names(client):
    page = client.get("/").content.decode()
    for name in ("keywords", "interests", "authors"):
        field = re.search(rf'<(?:input|textarea)[^>]*name="{name}"[^>]*>', page).group(0)
        assert "maxlength" not in field, name
    authors = re.search(r'<textarea[^>]*name="authors"[^>]*>', page).group(0)
    assert "data-limit" not in authors
    assert "One name per line, at most 30 names." in page
