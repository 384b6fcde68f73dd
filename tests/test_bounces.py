import base64
import io
import json
import sys
from datetime import datetime, timezone

import pytest
from django.core.management import call_command
from django.test import Client

from digest.bounces import parse_dsn, record_bounce, record_complaint
from digest.models import Delivery
from subscribers.models import Subscriber

pytestmark = pytest.mark.django_db

Status = Subscriber.Status
HARD_BOUNCE = "dsn_postfix_5.1.1_user_unknown.eml"
DELAYED = "dsn_postfix_4.4.1_delayed.eml"


@pytest.fixture
def ada(settings):
    settings.BOUNCE_LIMIT = 2
    return Subscriber.objects.create(email="ada.lovelace@example.org", status=Status.ACTIVE)


def sent_digest(subscriber, message_id: str) -> Delivery:
    return Delivery.objects.create(
        subscriber=subscriber, period="2026-03-17", status=Delivery.Status.SENT, message_id=message_id,
        scheduled_for=datetime(2026, 3, 17, 8, tzinfo=timezone.utc),
    )


def test_a_permanent_bounce_counts_and_the_limit_marks_the_subscriber_bounced(ada):
    record_bounce("ada.lovelace@example.org", permanent=True)
    ada.refresh_from_db()
    assert (ada.bounce_count, ada.status) == (1, Status.ACTIVE)

    record_bounce("ADA.Lovelace@example.org", permanent=True)
    ada.refresh_from_db()
    assert (ada.bounce_count, ada.status) == (2, Status.BOUNCED)


def test_a_transient_bounce_changes_nothing(ada):
    record_bounce("ada.lovelace@example.org", permanent=False)

    ada.refresh_from_db()
    assert (ada.bounce_count, ada.status) == (0, Status.ACTIVE)


def test_a_bounce_for_an_unknown_address_is_ignored(ada):
    assert record_bounce("nobody@example.org", permanent=True) is None
    assert record_complaint("nobody@example.org") is None


def test_a_complaint_unsubscribes_at_once(ada):
    record_complaint("Ada.Lovelace@example.org")

    ada.refresh_from_db()
    assert ada.status == Status.UNSUBSCRIBED
    assert ada.unsubscribed_at is not None
    assert ada.next_delivery_at is None


def test_it_reads_the_recipient_status_and_returned_message_id_of_a_dsn(fixture_path):
    dsn = parse_dsn(fixture_path(HARD_BOUNCE).read_bytes())

    [recipient] = dsn.recipients
    assert recipient.email == "Ada.Lovelace@example.org"
    assert (recipient.action, recipient.status, recipient.permanent) == ("failed", "5.1.1", True)
    assert "User unknown" in recipient.diagnostic
    assert dsn.original_message_id == "<digest-2026-03-17-41@paperboy.example.org>"


def test_a_delayed_dsn_is_transient(fixture_path):
    [recipient] = parse_dsn(fixture_path(DELAYED).read_bytes()).recipients

    assert (recipient.action, recipient.status, recipient.permanent) == ("delayed", "4.4.1", False)


def feed(monkeypatch, raw: bytes) -> str:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    out = io.StringIO()
    call_command("feeddsn", stdout=out)
    return out.getvalue()


def test_feeddsn_records_a_hard_bounce_and_marks_the_digest_it_returns(ada, fixture_path, monkeypatch):
    bounced = sent_digest(ada, "<digest-2026-03-17-41@paperboy.example.org>")
    other = Delivery.objects.create(subscriber=ada, period="2026-03-16", status=Delivery.Status.SENT,
                                    message_id="<other@x>", scheduled_for=bounced.scheduled_for)

    output = feed(monkeypatch, fixture_path(HARD_BOUNCE).read_bytes())

    ada.refresh_from_db()
    bounced.refresh_from_db()
    other.refresh_from_db()
    assert ada.bounce_count == 1
    assert bounced.status == Delivery.Status.BOUNCED
    assert other.status == Delivery.Status.SENT
    assert output.strip() == f"Ada.Lovelace@example.org: permanent bounce (5.1.1), subscriber {ada.pk}, now active"


def test_feeddsn_leaves_a_delay_warning_alone(fixture_path, monkeypatch):
    grace = Subscriber.objects.create(email="grace@example.net", status=Status.ACTIVE)

    output = feed(monkeypatch, fixture_path(DELAYED).read_bytes())

    grace.refresh_from_db()
    assert grace.bounce_count == 0 and grace.status == Status.ACTIVE
    assert "transient bounce (4.4.1)" in output


def test_feeddsn_says_so_when_the_message_is_not_a_dsn(monkeypatch):
    output = feed(monkeypatch, b"From: someone@example.org\r\nSubject: hello\r\n\r\nJust a reply.\r\n")

    assert "No bounced recipients" in output


# --- provider webhooks through anymail's real views --------------------------------------------


@pytest.fixture
def webhook(client, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:s3cret"}
    auth = "Basic " + base64.b64encode(b"hook:s3cret").decode()

    def post(payload: dict):
        return client.post(
            "/anymail/postmark/tracking/", data=json.dumps(payload), content_type="application/json",
            HTTP_AUTHORIZATION=auth,
        )

    return post


def postmark(record_type: str, kind: str, email: str) -> dict:
    return {
        "RecordType": record_type, "Type": kind, "TypeCode": 1, "ID": 4323372036854775807,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "Email": email, "From": "digest@paperboy.example.org",
        "BouncedAt": "2026-03-17T08:00:09Z", "Description": "The server was unable to deliver your message",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Inactive": True, "CanActivate": True, "Subject": "8 new papers", "ServerID": 23, "Tag": "digest",
    }


def test_a_provider_hard_bounce_webhook_counts_a_bounce(ada, webhook):
    response = webhook(postmark("Bounce", "HardBounce", "ada.lovelace@example.org"))

    assert response.status_code == 200
    ada.refresh_from_db()
    assert ada.bounce_count == 1


def test_a_provider_transient_bounce_webhook_changes_nothing(ada, webhook):
    webhook(postmark("Bounce", "Transient", "ada.lovelace@example.org"))

    ada.refresh_from_db()
    assert ada.bounce_count == 0


def test_a_provider_spam_complaint_webhook_unsubscribes(ada, webhook):
    response = webhook(postmark("SpamComplaint", "SpamComplaint", "ada.lovelace@example.org"))

    assert response.status_code == 200
    ada.refresh_from_db()
    assert ada.status == Status.UNSUBSCRIBED


def test_the_webhook_refuses_posts_without_the_secret(ada, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:s3cret"}

    response = Client(raise_request_exception=False).post("/anymail/postmark/tracking/", data=json.dumps(postmark("SpamComplaint", "SpamComplaint",
                           "ada.lovelace@example.org")), content_type="application/json")

    assert response.status_code in {400, 401, 403}
    ada.refresh_from_db()
    assert ada.status == Status.ACTIVE
