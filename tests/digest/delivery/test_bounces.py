import base64
import hashlib
import hmac
import io
import json
import sys
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.test import Client

from config.env import parse_bounce_address
from digest.delivery.bounces import parse_dsn, record_bounce_by_address, record_complaint
from digest.delivery.refusal_alarm import message_refusals
from digest.delivery.sending import send_delivery_chunk
from digest.models import Delivery
from mail.refusals import Phase, Refusal, classify, smtp_refusal
from mail.return_path import delivery_id_from, return_path
from subscribers.emails import personal_links
from subscribers.models import Subscriber
from subscribers.services import purge_pending
from subscribers.tokens import make_token
from tests.support.digest_samples import make_paper, queued_digest, seed_papers
from tests.support.smtp_sink import SmtpSink

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
        subscriber=subscriber,
        period="2026-03-17",
        status=Delivery.Status.SENT,
        message_id=message_id,
        scheduled_for=datetime(2026, 3, 17, 8, tzinfo=UTC),
    )


def test_a_permanent_bounce_counts_and_the_limit_marks_the_subscriber_bounced(ada):
    record_bounce_by_address("ada.lovelace@example.org", permanent=True)
    ada.refresh_from_db()
    assert (ada.bounce_count, ada.status) == (1, Status.ACTIVE)

    record_bounce_by_address("ADA.Lovelace@example.org", permanent=True)
    ada.refresh_from_db()
    assert (ada.bounce_count, ada.status) == (2, Status.BOUNCED)


def test_a_transient_bounce_changes_nothing(ada):
    record_bounce_by_address("ada.lovelace@example.org", permanent=False)

    ada.refresh_from_db()
    assert (ada.bounce_count, ada.status) == (0, Status.ACTIVE)


def test_a_bounce_for_an_unknown_address_is_ignored(ada):
    assert record_bounce_by_address("nobody@example.org", permanent=True) is None
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
    assert (recipient.action, recipient.status, recipient.refusal(dsn.text)) == ("failed", "5.1.1", Refusal.RECIPIENT)
    assert "User unknown" in recipient.diagnostic
    assert "(in reply to RCPT TO command)" in dsn.text
    assert dsn.original_message_id == "<digest-2026-03-17-41@paperboy.example.org>"
    assert dsn.delivered_to == ("digest@paperboy.example.org",)


def test_a_delayed_dsn_is_transient(fixture_path):
    [recipient] = parse_dsn(fixture_path(DELAYED).read_bytes()).recipients

    assert (recipient.action, recipient.status, recipient.refusal()) == ("delayed", "4.4.1", Refusal.TRANSIENT)


def feed(monkeypatch, raw: bytes) -> str:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    out = io.StringIO()
    call_command("feeddsn", stdout=out)
    return out.getvalue()


def test_feeddsn_records_a_hard_bounce_and_marks_the_digest_it_returns(ada, fixture_path, monkeypatch):
    bounced = sent_digest(ada, "<digest-2026-03-17-41@paperboy.example.org>")
    other = Delivery.objects.create(
        subscriber=ada,
        period="2026-03-16",
        status=Delivery.Status.SENT,
        message_id="<other@x>",
        scheduled_for=bounced.scheduled_for,
    )

    output = feed(monkeypatch, fixture_path(HARD_BOUNCE).read_bytes())

    ada.refresh_from_db()
    bounced.refresh_from_db()
    other.refresh_from_db()
    assert ada.bounce_count == 1
    assert bounced.status == Delivery.Status.BOUNCED
    assert "5.1.1" in bounced.last_error
    assert other.status == Delivery.Status.SENT
    assert output.strip() == (
        f"Ada.Lovelace@example.org: address refused (5.1.1), digest {bounced.pk} now bounced, "
        f"subscriber {ada.pk} now active"
    )


def test_feeddsn_leaves_a_delay_warning_alone(fixture_path, monkeypatch):
    grace = Subscriber.objects.create(email="grace@example.net", status=Status.ACTIVE)
    delayed = sent_digest(grace, "<digest-2026-03-17-42@paperboy.example.org>")

    output = feed(monkeypatch, fixture_path(DELAYED).read_bytes())

    grace.refresh_from_db()
    assert grace.bounce_count == 0 and grace.status == Status.ACTIVE
    assert Delivery.objects.get(id=delayed.id).status == Delivery.Status.SENT
    assert f"grace@example.net: transient (4.4.1), digest {delayed.pk}: nothing changed" in output


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
            "/anymail/postmark/tracking/",
            data=json.dumps(payload),
            content_type="application/json",
            HTTP_AUTHORIZATION=auth,
        )

    return post


def postmark(record_type: str, kind: str, email: str) -> dict:
    return {
        "RecordType": record_type,
        "Type": kind,
        "TypeCode": 1,
        "ID": 4323372036854775807,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Email": email,
        "From": "digest@paperboy.example.org",
        "BouncedAt": "2026-03-17T08:00:09Z",
        "Description": "The server was unable to deliver your message",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Inactive": True,
        "CanActivate": True,
        "Subject": "8 new papers",
        "ServerID": 23,
        "Tag": "digest",
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

    response = Client(raise_request_exception=False).post(
        "/anymail/postmark/tracking/",
        data=json.dumps(postmark("SpamComplaint", "SpamComplaint", "ada.lovelace@example.org")),
        content_type="application/json",
    )

    assert response.status_code in {400, 401, 403}
    ada.refresh_from_db()
    assert ada.status == Status.ACTIVE


# --- a DSN must prove which digest it answers ----------------------------------------------------


def dsn(
    recipient: str,
    *,
    status: str = "5.1.1",
    action: str = "failed",
    message_id: str = "<unrelated@x.example>",
    delivered_to: str = "bounces@localhost",
    diagnostic: str = "smtp; 550 5.1.1 User unknown",
    said: str = "(in reply to RCPT TO command)",
) -> bytes:
    """A delivery status notification as Postfix writes one; anyone can write one like it."""
    returned = f"Message-ID: {message_id}\r\n" if message_id else ""
    return f"""Return-Path: <>\r
Delivered-To: {delivered_to}\r
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r
To: {delivered_to}\r
Subject: Undelivered Mail Returned to Sender\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r
\r
--B\r
Content-Type: text/plain; charset=utf-8\r
\r
<{recipient}>: host mx.example.net said: {diagnostic.removeprefix("smtp; ")} {said}\r
--B\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.example.net\r
\r
Final-Recipient: rfc822; {recipient}\r
Action: {action}\r
Status: {status}\r
Diagnostic-Code: {diagnostic}\r
--B\r
Content-Type: text/rfc822-headers\r
\r
{returned}Subject: 3 new papers\r
--B--\r
""".encode()


@pytest.fixture
def eve(db):
    return Subscriber.objects.create(email="eve@example.com", status=Status.ACTIVE)


def test_a_forged_dsn_fed_three_times_changes_nothing(ada, monkeypatch, caplog):
    digest = sent_digest(ada, "<real-digest@paperboy.example.org>")

    outputs = [feed(monkeypatch, dsn("ada.lovelace@example.org")) for _ in range(3)]

    ada.refresh_from_db()
    assert (ada.status, ada.bounce_count) == (Status.ACTIVE, 0)
    assert Delivery.objects.get(id=digest.id).status == Delivery.Status.SENT
    assert all("ignored: it names no digest we sent to this address" in output for output in outputs)
    unproven = [r for r in caplog.records if getattr(r, "event", "") == "bounce.unproven"]
    assert len(unproven) == 3 and unproven[0].domain == "example.org" and unproven[0].levelname == "WARNING"


def test_a_forged_dsn_cannot_start_the_bounce_then_purge_chain(ada, monkeypatch):
    from datetime import timedelta

    sent_digest(ada, "<real-digest@paperboy.example.org>")
    for _ in range(3):
        feed(monkeypatch, dsn("ada.lovelace@example.org", message_id=""))
    purge_pending(timedelta(days=0))

    ada.refresh_from_db()
    assert ada.status == Status.ACTIVE
    assert ada.deliveries.count() == 1


def test_the_message_id_of_a_digest_sent_to_someone_else_proves_nothing(ada, eve, monkeypatch):
    eves = sent_digest(eve, "<eves-own-digest@paperboy.example.org>")

    feed(monkeypatch, dsn("ada.lovelace@example.org", message_id=eves.message_id))

    ada.refresh_from_db()
    eve.refresh_from_db()
    assert (ada.bounce_count, eve.bounce_count) == (0, 0)
    assert Delivery.objects.get(id=eves.id).status == Delivery.Status.SENT


def test_a_forged_return_path_token_proves_nothing(ada, monkeypatch):
    digest = sent_digest(ada, "<real-digest@paperboy.example.org>")
    genuine = return_path(digest.id)
    local, _, domain = genuine.partition("@")
    forged = [
        f"{local[:-4]}aaaa@{domain}",  # the right delivery, a wrong signature
        f"bounces+{digest.id}@{domain}",  # no signature
        f"{local[:-24]}{'a' * 24}@{domain}",
    ]

    for address in forged:
        output = feed(monkeypatch, dsn("ada.lovelace@example.org", message_id="", delivered_to=address))
        assert "ignored" in output

    ada.refresh_from_db()
    assert ada.bounce_count == 0
    assert Delivery.objects.get(id=digest.id).status == Delivery.Status.SENT


def test_a_stranger_with_their_own_return_path_can_only_bounce_their_own_digest(ada, eve, monkeypatch):
    adas = sent_digest(ada, "<adas-digest@paperboy.example.org>")
    eves = sent_digest(eve, "<eves-digest@paperboy.example.org>")

    # Eve's digest came with its return path; she reports Ada's address and Ada's Message-ID on it.
    feed(monkeypatch, dsn("ada.lovelace@example.org", message_id=adas.message_id, delivered_to=return_path(eves.id)))

    ada.refresh_from_db()
    eve.refresh_from_db()
    assert (ada.bounce_count, Delivery.objects.get(id=adas.id).status) == (0, Delivery.Status.SENT)
    assert (eve.bounce_count, Delivery.objects.get(id=eves.id).status) == (1, Delivery.Status.BOUNCED)


def test_a_genuine_dsn_fed_again_counts_once(ada, monkeypatch, settings):
    settings.BOUNCE_LIMIT = 2
    digest = sent_digest(ada, "<real-digest@paperboy.example.org>")

    outputs = [feed(monkeypatch, dsn("Ada.Lovelace@example.org", message_id=digest.message_id)) for _ in range(3)]

    ada.refresh_from_db()
    assert (ada.bounce_count, ada.status) == (1, Status.ACTIVE)
    assert "now bounced" in outputs[0]
    assert all(f"digest {digest.pk}: nothing changed" in output for output in outputs[1:])


@pytest.mark.parametrize("how", ["--recipient", "Delivered-To", "X-Original-To"])
def test_a_bounce_to_the_return_path_of_a_digest_sent_over_smtp_counts(monkeypatch, settings, how):
    """The whole way: a digest goes to a real SMTP server, which bounces it to its return path
    with a report that returns no headers, so only the return path says which digest it was."""

    settings.BOUNCE_LIMIT = 1
    papers = [make_paper(index, title, abstract) for index, (title, abstract) in enumerate(seed_papers()[:3])]
    with SmtpSink(pipelining=True) as sink:
        for name, value in sink.email_settings().items():
            setattr(settings, name, value)
        delivery = queued_digest("reader@example.org", papers)
        assert send_delivery_chunk([delivery.id]).sent == 1
    envelope_sender = sink.received[0].mail_from
    assert envelope_sender.startswith("bounces+") and envelope_sender.endswith("@localhost")

    report = dsn("reader@example.org", message_id="", delivered_to="bounces@localhost")
    if how == "--recipient":
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(report)))
        call_command("feeddsn", "--recipient", envelope_sender, stdout=io.StringIO())
    else:
        # Some mail systems fold the case of the address they deliver to.
        feed(monkeypatch, f"{how}: {envelope_sender.upper()}\r\n".encode() + report)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.BOUNCED
    assert delivery.subscriber.status == Status.BOUNCED


def test_a_return_path_fits_a_local_part_and_outlives_a_key_rotation(settings):
    settings.BOUNCE_ADDRESS = "b" * 25 + "@bounces.example.org"
    longest = return_path(2**63 - 1)
    assert len(longest.partition("@")[0]) == 64
    assert delivery_id_from(longest) == 2**63 - 1

    address = return_path(41)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-key", [settings.SECRET_KEY]
    assert delivery_id_from(address) == 41
    assert delivery_id_from(return_path(41)) == 41
    settings.SECRET_KEY_FALLBACKS = []
    assert delivery_id_from(address) is None


def test_a_return_path_token_is_still_signed_as_the_digests_already_sent_were(settings):
    # Bounces of digests sent before this process started must verify: the signature is the first
    # 24 base-32 characters of the HMAC, keyed as django.core.signing keys a salted signer.
    settings.BOUNCE_ADDRESS = "bounces@example.org"
    key = hashlib.sha256(f"paperboy.tokens.return-pathsigner{settings.SECRET_KEY}".encode()).digest()
    signature = base64.b32encode(hmac.new(key, b"41", hashlib.sha256).digest()).decode().lower()[:24]

    assert return_path(41) == f"bounces+15.{signature}@example.org"


def test_without_verp_digests_go_out_from_the_bounce_address(settings):
    settings.BOUNCE_VERP, settings.BOUNCE_ADDRESS = False, "bounces@paperboy.example.org"

    assert return_path(41) == "bounces@paperboy.example.org"


def test_a_bounce_address_too_long_for_verp_is_a_startup_error():
    from django.core.exceptions import ImproperlyConfigured

    assert (
        parse_bounce_address("", "Paperboy <digest@paperboy.example.org>", verp=True) == "bounces@paperboy.example.org"
    )
    with pytest.raises(ImproperlyConfigured, match="at most 25"):
        parse_bounce_address("b" * 26 + "@example.org", "x@example.org", verp=True)
    with pytest.raises(ImproperlyConfigured, match="bare address"):
        parse_bounce_address("Bounces <bounces@example.org>", "x@example.org", verp=False)


# --- what a proven DSN reports (mail/refusals.py) ----------------------------------------------


def test_a_dsn_refusing_the_message_fails_the_digest_counts_nothing_and_raises_the_alarm(ada, monkeypatch, caplog):
    digest = sent_digest(ada, "<real-digest@paperboy.example.org>")

    output = feed(
        monkeypatch,
        dsn(
            "ada.lovelace@example.org",
            status="5.7.26",
            message_id=digest.message_id,
            diagnostic="smtp; 550 5.7.26 Unauthenticated email is not accepted due to the sender's DMARC policy",
            said="(in reply to end of DATA command)",
        ),
    )

    ada.refresh_from_db()
    digest.refresh_from_db()
    assert (ada.bounce_count, ada.status) == (0, Status.ACTIVE)
    assert digest.status == Delivery.Status.FAILED
    assert digest.last_error.startswith("message refused: DSN 5.7.26")
    assert "message refused, not counted (5.7.26)" in output
    assert message_refusals().refused == 1
    assert any(getattr(r, "event", "") == "mail.message_refused" and r.source == "dsn" for r in caplog.records)


def test_a_full_mailbox_fails_the_digest_without_counting_or_alarming(ada, monkeypatch):
    digest = sent_digest(ada, "<real-digest@paperboy.example.org>")

    feed(
        monkeypatch,
        dsn(
            "ada.lovelace@example.org",
            status="5.2.2",
            message_id=digest.message_id,
            diagnostic="smtp; 552 5.2.2 Mailbox full",
        ),
    )

    ada.refresh_from_db()
    assert ada.bounce_count == 0
    assert Delivery.objects.get(id=digest.id).status == Delivery.Status.FAILED
    assert message_refusals().refused == 0


@pytest.mark.parametrize(
    ("said", "counted"),
    [
        ("(in reply to RCPT TO command)", True),
        ("(in reply to end of DATA command)", False),
        ("", False),
    ],
)
def test_a_5_7_1_counts_only_when_it_refused_the_recipient(ada, monkeypatch, said, counted):
    digest = sent_digest(ada, "<real-digest@paperboy.example.org>")

    feed(
        monkeypatch,
        dsn(
            "ada.lovelace@example.org",
            status="5.7.1",
            message_id=digest.message_id,
            diagnostic="smtp; 554 5.7.1 Delivery not authorized",
            said=said,
        ),
    )

    ada.refresh_from_db()
    assert ada.bounce_count == (1 if counted else 0)


@pytest.mark.parametrize(
    ("status", "refusal"),
    [
        ("5.1.1", "recipient"),
        ("5.1.10", "recipient"),
        ("5.2.1", "recipient"),
        ("5.1.7", "message"),
        ("5.2.2", "mailbox full"),
        ("5.2.3", "message"),
        ("5.3.4", "message"),
        ("5.6.1", "message"),
        ("5.7.26", "message"),
        ("5.5.4", "message"),
        ("4.4.1", "transient"),
    ],
)
def test_the_status_mapping_follows_rfc_3463(status, refusal):
    assert classify(status, Phase.RCPT).value == refusal


def test_a_bare_5xx_to_rcpt_to_is_the_recipients_and_to_data_the_messages():
    import smtplib

    assert smtp_refusal(smtplib.SMTPRecipientsRefused({"a@x.org": (550, b"No such user")})) is Refusal.RECIPIENT
    assert smtp_refusal(smtplib.SMTPRecipientsRefused({"a@x.org": (550, b"5.7.25 No reverse DNS")})) is Refusal.MESSAGE
    assert smtp_refusal(smtplib.SMTPRecipientsRefused({"a@x.org": (452, b"4.2.2 Over quota")})) is Refusal.TRANSIENT
    assert smtp_refusal(smtplib.SMTPDataError(550, b"5.1.1 No such user")) is Refusal.RECIPIENT
    assert smtp_refusal(smtplib.SMTPDataError(554, b"Transaction failed")) is Refusal.MESSAGE
    assert smtp_refusal(smtplib.SMTPDataError(552, b"5.3.4 Message too big")) is Refusal.MESSAGE
    assert smtp_refusal(smtplib.SMTPSenderRefused(553, b"Sender rejected", "b@x.org")) is Refusal.MESSAGE
    assert smtp_refusal(smtplib.SMTPSenderRefused(451, b"Try later", "b@x.org")) is Refusal.TRANSIENT
    assert smtp_refusal(smtplib.SMTPAuthenticationError(535, b"5.7.8 Bad credentials")) is Refusal.MESSAGE


# --- provider webhooks tied to the digest ---------------------------------------------------------


def test_a_webhook_bounce_carrying_our_message_id_marks_that_digest_and_counts_once(ada, webhook, settings):
    settings.BOUNCE_LIMIT = 3
    digest = sent_digest(ada, "<real-digest@paperboy.example.org>")
    event = {**postmark("Bounce", "HardBounce", "ada.lovelace@example.org"), "MessageID": digest.message_id}

    for _ in range(2):
        assert webhook(event).status_code == 200

    ada.refresh_from_db()
    assert ada.bounce_count == 1
    assert Delivery.objects.get(id=digest.id).status == Delivery.Status.BOUNCED


def test_a_webhook_dmarc_rejection_is_a_refused_message_not_a_bounce(ada, webhook):
    digest = sent_digest(ada, "<real-digest@paperboy.example.org>")
    webhook({**postmark("Bounce", "DMARCPolicy", "ada.lovelace@example.org"), "MessageID": digest.message_id})
    webhook(
        postmark("Bounce", "HardBounce", "ada.lovelace@example.org")
        | {"Details": "smtp;550 5.7.26 Unauthenticated email from paperboy.example.org is not accepted due to DMARC"}
    )

    ada.refresh_from_db()
    assert ada.bounce_count == 0
    assert Delivery.objects.get(id=digest.id).status == Delivery.Status.FAILED
    assert message_refusals().refused == 2


# --- the other mail intake: List-Unsubscribe replies ----------------------------------------------


def mail_to_unsubscribe(monkeypatch, raw: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    call_command("mailunsubscribe", stdout=io.StringIO())


@pytest.mark.parametrize(
    "subject",
    [
        "unsubscribe",
        "unsubscribe ada.lovelace@example.org",
        "Re: unsubscribe please",
        "UNSUBSCRIBE {manage}",
        "unsubscribe {digest}",
    ],
)
def test_mail_without_the_subscribers_own_unsubscribe_token_unsubscribes_no_one(ada, monkeypatch, subject):
    from django.core.management.base import CommandError

    # Sent as if from Ada, with her other (valid) tokens: only an unsubscribe token counts.
    subject = subject.format(manage=make_token(ada, "manage"), digest=make_token(ada, "digest", {"d": 1}))
    raw = f"From: ada.lovelace@example.org\r\nTo: paperboy@localhost\r\nSubject: {subject}\r\n\r\nPlease.\r\n".encode()

    with pytest.raises(CommandError, match="no valid unsubscribe token"):
        mail_to_unsubscribe(monkeypatch, raw)

    ada.refresh_from_db()
    assert ada.status == Status.ACTIVE


def test_a_bounce_returning_a_digest_with_its_unsubscribe_link_unsubscribes_no_one(ada, monkeypatch):
    from django.core.management.base import CommandError

    links = personal_links(ada)
    raw = dsn("ada.lovelace@example.org").replace(
        b"Subject: 3 new papers\r\n",
        f"Subject: 3 new papers\r\nList-Unsubscribe: <{links['unsubscribe_mailto']}>\r\n".encode(),
    )

    with pytest.raises(CommandError):
        mail_to_unsubscribe(monkeypatch, raw)

    ada.refresh_from_db()
    assert ada.status == Status.ACTIVE
