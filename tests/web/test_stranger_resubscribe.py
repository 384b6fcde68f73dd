"""A stranger tries to bring back a reader who left: with the confirmation links the reader used
(or that a newer one replaced), and with every other link a forwarded digest carries, against
the manage page's Resubscribe and Resume buttons and the digest's web copy. A reader who
unsubscribed or bounced stays so, with everything they stored unchanged."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from digest.models import Delivery
from subscribers import services
from subscribers.models import Subscriber
from subscribers.tokens import make_token
from tests.support.signup import form

pytestmark = pytest.mark.django_db

Status = Subscriber.Status


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    cache.clear()
    settings.SIGNUP_RATE_PER_ADDRESS = 100


def link(message, name: str) -> str:
    return re.search(rf"https?://[^/]+(/{name}/[^/\s]+/)", message.body).group(1)


def stored(subscriber: Subscriber) -> tuple:
    row = Subscriber.objects.get(pk=subscriber.pk)
    return (
        row.status,
        row.unsubscribed_at,
        row.bounce_count,
        row.confirmed_at,
        row.next_delivery_at,
        row.keywords,
        row.max_papers,
        sorted(t.slug for t in row.topics.all()),
    )


def left(committed, how: str) -> tuple[Subscriber, list[str]]:
    """Ada signs up, is sent a second confirmation an hour later, confirms with it, then leaves
    (unsubscribes, or bounces). Returns her and both confirmation links."""
    with time_machine.travel(timezone.now() - timedelta(hours=3), tick=False) as clock:
        with committed():
            Client().post("/", form())
        clock.shift(timedelta(minutes=61))
        with committed():
            Client().post("/", form())
        links = [link(message, "confirm") for message in mail.outbox]
        with committed():
            assert Client().post(links[-1]).status_code == 302
    ada = Subscriber.objects.get()
    if how == "unsubscribed":
        Client().post(reverse("subscribers:unsubscribe", args=[make_token(ada, "unsubscribe")]))
    else:
        for _ in range(settings.BOUNCE_LIMIT):
            services.record_bounce(ada.pk)
    ada.refresh_from_db()
    assert ada.status == how
    return ada, links


@pytest.mark.parametrize("how", [Status.UNSUBSCRIBED, Status.BOUNCED])
def test_a_used_or_replaced_confirmation_link_does_not_bring_a_reader_back(committed, how):
    ada, links = left(committed, how)
    before = stored(ada)
    assert len(links) == 2 and links[0] != links[1]

    for path in links:
        with committed():
            page = Client().get(path)
            response = Client().post(path)
        assert page.status_code == response.status_code == 200
        assert "This link was used" in response.content.decode()
        assert "Confirm my subscription" not in page.content.decode()

    assert stored(ada) == before


@pytest.mark.parametrize("purpose", ["unsubscribe", "digest", "feedback", "confirm"])
@pytest.mark.parametrize("action", ["resubscribe", "resume"])
def test_no_other_link_of_a_forwarded_digest_opens_the_manage_page(committed, purpose, action):
    ada, _ = left(committed, Status.UNSUBSCRIBED)
    before = stored(ada)
    token = make_token(ada, purpose, {"digest": 1} if purpose == "feedback" else None)

    with committed():
        response = Client().post(reverse("subscribers:manage", args=[token]), {"action": action})

    assert response.status_code == 400
    assert stored(ada) == before


def test_a_tampered_manage_link_does_not_resubscribe(committed):
    ada, _ = left(committed, Status.UNSUBSCRIBED)
    before = stored(ada)
    token = make_token(ada, "manage")
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), token.rpartition(":")[0], "x" + token):
        with committed():
            response = Client().post(reverse("subscribers:manage", args=[bad]), {"action": "resubscribe"})
        assert response.status_code == 400
    assert stored(ada) == before


def test_the_web_copy_of_a_digest_resubscribes_no_one(committed):
    ada, _ = left(committed, Status.UNSUBSCRIBED)
    before = stored(ada)
    delivery = Delivery.objects.create(subscriber=ada, period="2026-11-26", scheduled_for=timezone.now())
    path = reverse("digest:view", args=[make_token(ada, "digest", {"d": delivery.pk})])

    for action in ("resubscribe", "resume", "confirm", "email-manage-link"):
        with committed():
            assert Client().post(path, {"action": action}).status_code == 302

    assert stored(ada) == before


def test_the_resubscribe_button_needs_the_pages_csrf_token(committed):
    ada, _ = left(committed, Status.UNSUBSCRIBED)
    before = stored(ada)
    client = Client(enforce_csrf_checks=True)
    path = reverse("subscribers:manage", args=[make_token(ada, "manage")])
    with committed():
        assert client.post(path, {"action": "resubscribe"}).status_code == 403
    assert stored(ada) == before
