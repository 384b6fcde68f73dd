"""The anonymous signup form never changes or erases a known subscriber, whatever their status.

It only emails the address's owner (their confirmation link while pending, otherwise their manage
link; at most one an hour), and `purgepending` erases only people who never confirmed.
"""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.core.management import call_command
from django.forms.models import model_to_dict
from django.test import Client
from django.utils import timezone

from digest.models import Delivery
from subscribers import services
from subscribers.models import Subscriber, Topic
from tests.support.signup import form

pytestmark = pytest.mark.django_db

Status = Subscriber.Status
KNOWN = [Status.PENDING, Status.ACTIVE, Status.PAUSED, Status.UNSUBSCRIBED, Status.BOUNCED]
# Stamps of the hourly email cap: sending the owner an email moves them, nothing else does.
EMAIL_STAMPS = {"confirmation_sent_at", "manage_link_sent_at"}


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    cache.clear()
    settings.SIGNUP_RATE_PER_ADDRESS = 100


@pytest.fixture
def topics():
    return (
        Topic.objects.create(slug="mine", name="Mine", description="What the owner chose"),
        Topic.objects.create(slug="theirs", name="Theirs", description="What a stranger picks"),
    )


def known(status: str, topic: Topic, email: str | None = None) -> Subscriber:
    confirmed = status != Status.PENDING
    subscriber = Subscriber.objects.create(
        email=email or f"{status}@example.org",
        status=status,
        keywords="mine, -noise",
        interests="my own words",
        categories=["cs.CV"],
        authors=["Ada Lovelace"],
        timezone="Europe/Paris",
        delivery_hour=7,
        max_papers=5,
        confirmed_at=timezone.now() - timedelta(days=100) if confirmed else None,
        unsubscribed_at=timezone.now() - timedelta(days=3) if status == Status.UNSUBSCRIBED else None,
        bounce_count=3 if status == Status.BOUNCED else 0,
        confirmation_sent_at=timezone.now() - timedelta(days=101),
    )
    subscriber.topics.add(topic)
    if confirmed:
        Delivery.objects.create(subscriber=subscriber, period="2026-08-01", scheduled_for=timezone.now(), status="sent")
    return subscriber


def stored(subscriber: Subscriber) -> dict:
    row = Subscriber.objects.get(pk=subscriber.pk)
    return {
        **{k: v for k, v in model_to_dict(row).items() if k not in EMAIL_STAMPS},
        "topics": sorted(t.slug for t in row.topics.all()),
        "public_id": row.public_id,
        "created_at": row.created_at,
        "confirmed_at": row.confirmed_at,
        "unsubscribed_at": row.unsubscribed_at,
        "bounce_count": row.bounce_count,
    }


def stranger_signs_up(email: str, topic: Topic, django_capture_on_commit_callbacks) -> int:
    with django_capture_on_commit_callbacks(execute=True):
        return (
            Client()
            .post(
                "/",
                form(
                    email=email.upper(),
                    topics=[str(topic.pk)],
                    keywords="stranger, words",
                    frequency="weekly",
                    max_papers="50",
                    timezone="UTC",
                ),
            )
            .status_code
        )


@pytest.mark.parametrize("status", KNOWN)
def test_an_anonymous_signup_for_a_known_address_changes_nothing_stored(
    status, topics, django_capture_on_commit_callbacks
):
    mine, theirs = topics
    subscriber = known(status, mine)
    before = stored(subscriber)

    assert stranger_signs_up(subscriber.email, theirs, django_capture_on_commit_callbacks) == 302

    assert stored(subscriber) == before
    assert Subscriber.objects.count() == 1
    [message] = mail.outbox
    assert message.to == [subscriber.email]
    # While pending, the link they need is the confirmation one; afterwards, their manage link.
    link = r"/confirm/[^/\s]+/" if status == Status.PENDING else r"/manage/[^/\s]+/"
    assert re.search(link, message.body)


def test_repeated_signups_for_a_known_address_email_its_owner_at_most_once_an_hour(
    topics, django_capture_on_commit_callbacks
):
    subscriber = known(Status.UNSUBSCRIBED, topics[0])
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for _ in range(5):
            stranger_signs_up(subscriber.email, topics[1], django_capture_on_commit_callbacks)
        assert len(mail.outbox) == 1
        clock.shift(timedelta(minutes=61))
        stranger_signs_up(subscriber.email, topics[1], django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 2


def test_signups_for_known_addresses_then_purgepending_erase_nothing(
    topics, settings, django_capture_on_commit_callbacks
):
    settings.PENDING_PURGE_DAYS = 14
    people = [
        known(status, topics[0]) for status in (Status.ACTIVE, Status.PAUSED, Status.UNSUBSCRIBED, Status.BOUNCED)
    ]
    before = [stored(person) for person in people]
    for person in people:
        stranger_signs_up(person.email, topics[1], django_capture_on_commit_callbacks)

    with time_machine.travel(timezone.now() + timedelta(days=30)):
        call_command("purgepending")

    assert [stored(person) for person in people] == before


def test_purgepending_erases_only_those_who_never_confirmed(topics, settings):
    settings.PENDING_PURGE_DAYS = 14
    never = known(Status.PENDING, topics[0], "never@example.org")
    # Set pending again by an older version of the signup form, after being active:
    once_confirmed = known(Status.ACTIVE, topics[0], "once-confirmed@example.org")
    Subscriber.objects.filter(pk=once_confirmed.pk).update(status=Status.PENDING)
    once_sent = known(Status.PENDING, topics[0], "once-sent@example.org")
    Delivery.objects.create(subscriber=once_sent, period="2026-08-02", scheduled_for=timezone.now(), status="sent")

    with time_machine.travel(timezone.now() + timedelta(days=30)):
        assert services.purge_pending(timedelta(days=14)) == 1

    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "once-confirmed@example.org",
        "once-sent@example.org",
    }
    assert not Subscriber.objects.filter(pk=never.pk).exists()


@pytest.mark.parametrize("status", [Status.UNSUBSCRIBED, Status.BOUNCED])
def test_the_owner_resubscribes_from_the_emailed_link_with_the_preferences_they_kept(
    client, status, topics, django_capture_on_commit_callbacks
):
    subscriber = known(status, topics[0])
    stranger_signs_up(subscriber.email, topics[1], django_capture_on_commit_callbacks)
    manage_path = re.search(r"https?://[^/]+(/manage/[^/\s]+/)", mail.outbox[0].body).group(1)

    page = client.get(manage_path).content.decode()
    assert 'name="action" value="resubscribe"' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(manage_path, {"action": "resubscribe"}, follow=True)

    assert "subscribed again" in response.content.decode()
    row = Subscriber.objects.get(pk=subscriber.pk)
    assert (row.status, row.unsubscribed_at, row.bounce_count) == (Status.ACTIVE, None, 0)
    assert row.next_delivery_at is not None
    assert (row.keywords, [t.slug for t in row.topics.all()], row.max_papers) == ("mine, -noise", ["mine"], 5)


def test_resubscribe_changes_only_unsubscribed_or_bounced_subscribers(topics):
    for status in (Status.PENDING, Status.ACTIVE, Status.PAUSED):
        subscriber = known(status, topics[0])
        assert services.resubscribe(subscriber) is False
        assert Subscriber.objects.get(pk=subscriber.pk).status == status
