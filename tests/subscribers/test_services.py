import json
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone

from digest.delivery.dispatch import due_subscribers
from digest.models import Candidate, Delivery, Paper
from subscribers import services, tasks
from subscribers.emails import personal_links
from subscribers.models import Subscriber, Topic
from subscribers.services import Preferences, SignupOutcome

pytestmark = pytest.mark.django_db

Status = Subscriber.Status


@pytest.fixture
def topic():
    return Topic.objects.create(slug="llms", name="Large language models", description="Training and evaluating LLMs")


def subscribe(committed, email="ada@example.org", **prefs):
    with committed():
        return services.subscribe(email, Preferences(**prefs))


def test_it_creates_a_pending_subscriber_and_sends_one_confirmation_email(committed, topic):
    outcome = subscribe(committed, "Ada@Example.org", topics=[topic], keywords='"neural field", NeRF, -medical')

    assert outcome == SignupOutcome.CONFIRMATION_SENT
    subscriber = Subscriber.objects.get()
    assert subscriber.status == "pending"
    assert subscriber.email == "Ada@example.org"
    assert subscriber.keywords == '"neural field", NeRF, -medical'
    assert list(subscriber.topics.all()) == [topic]
    assert subscriber.confirmation_sent_at is not None
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["Ada@example.org"]
    assert message.subject == "Confirm your Paperboy subscription"
    assert "/confirm/" in message.body
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_it_emails_a_manage_link_instead_when_the_address_is_already_subscribed(committed, topic):
    subscriber = Subscriber.objects.create(email="ada@example.org", status=Status.ACTIVE, keywords="diffusion")

    outcome = subscribe(committed, "ADA@example.org", keywords="something a stranger typed")

    assert outcome == SignupOutcome.MANAGE_LINK_SENT
    subscriber.refresh_from_db()
    assert subscriber.keywords == "diffusion", "a stranger must not change an active subscription"
    assert subscriber.status == "active"
    assert Subscriber.objects.count() == 1
    [message] = mail.outbox
    assert "/manage/" in message.body
    assert "already subscribed" in message.body


def test_it_sends_at_most_one_confirmation_per_address_per_hour(committed):
    with time_machine.travel("2026-11-26 09:00Z", tick=False):
        assert subscribe(committed) == SignupOutcome.CONFIRMATION_SENT
        assert subscribe(committed) == SignupOutcome.THROTTLED
    with time_machine.travel("2026-11-26 09:59Z", tick=False):
        assert subscribe(committed) == SignupOutcome.THROTTLED
    with time_machine.travel("2026-11-26 10:01Z", tick=False):
        assert subscribe(committed) == SignupOutcome.CONFIRMATION_SENT
    assert len(mail.outbox) == 2


def test_manage_links_are_also_capped_at_one_per_hour(committed):
    Subscriber.objects.create(email="ada@example.org", status=Status.ACTIVE)
    outcomes = [subscribe(committed) for _ in range(3)]
    assert outcomes == [SignupOutcome.MANAGE_LINK_SENT, SignupOutcome.THROTTLED, SignupOutcome.THROTTLED]
    assert len(mail.outbox) == 1


def test_confirm_activates_a_pending_subscriber_once_and_schedules_their_first_digest(committed):
    subscribe(committed)
    subscriber = Subscriber.objects.get()

    assert services.confirm(subscriber) is True
    assert services.confirm(subscriber) is False
    subscriber.refresh_from_db()
    assert subscriber.status == "active"
    assert subscriber.confirmed_at is not None
    assert subscriber.next_delivery_at is not None


def test_pending_subscribers_are_never_due_for_a_digest(committed):
    subscribe(committed, "pending@example.org")
    active = Subscriber.objects.create(email="active@example.org", status=Status.ACTIVE)
    assert list(due_subscribers(timezone.now(), force=True)) == [active]


def test_resubscribing_after_unsubscribing_goes_through_the_emailed_manage_link(committed, topic):
    subscriber = Subscriber.objects.create(email="ada@example.org", status=Status.ACTIVE, keywords="mine")
    subscriber.topics.add(topic)
    services.unsubscribe(subscriber)

    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        outcome = subscribe(committed, keywords="typed on the form")

    subscriber.refresh_from_db()
    assert outcome == SignupOutcome.MANAGE_LINK_SENT
    assert subscriber.status == "unsubscribed" and subscriber.keywords == "mine"
    assert "/manage/" in mail.outbox[-1].body
    assert services.resubscribe(subscriber)
    assert subscriber.status == "active" and subscriber.unsubscribed_at is None and subscriber.next_delivery_at
    assert subscriber.keywords == "mine" and list(subscriber.topics.all()) == [topic]


def test_unsubscribe_is_idempotent():
    subscriber = Subscriber.objects.create(email="ada@example.org", status=Status.ACTIVE)
    assert services.unsubscribe(subscriber) is True
    first = subscriber.unsubscribed_at
    assert services.unsubscribe(subscriber) is False
    subscriber.refresh_from_db()
    assert subscriber.status == "unsubscribed"
    assert subscriber.unsubscribed_at == first
    assert subscriber.next_delivery_at is None


def test_pause_and_resume_move_only_between_active_and_paused():
    subscriber = Subscriber.objects.create(email="ada@example.org", status=Status.ACTIVE)
    assert services.pause(subscriber) and subscriber.status == "paused" and subscriber.next_delivery_at is None
    assert not services.pause(subscriber)
    assert services.resume(subscriber) and subscriber.status == "active" and subscriber.next_delivery_at
    pending = Subscriber.objects.create(email="new@example.org")
    assert not services.resume(pending) and pending.status == "pending"


def test_update_preferences_stores_what_was_typed_and_reschedules_on_a_new_hour(topic):
    subscriber = Subscriber.objects.create(email="ada@example.org", status=Status.ACTIVE)
    prefs = Preferences(
        topics=[topic],
        keywords='"state space", -survey',
        interests="cheaper attention",
        categories=["cs.LG"],
        authors=["Tri Dao"],
        timezone="Asia/Tokyo",
        frequency="weekly",
        weekday=4,
        delivery_hour=7,
        max_papers=5,
    )
    services.update_preferences(subscriber, prefs)

    subscriber.refresh_from_db()
    assert Preferences.of(subscriber) == prefs
    local = subscriber.next_delivery_at.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    assert (local.weekday(), local.hour) == (4, 7)


def test_export_data_holds_the_subscription_and_its_deliveries_as_json(topic):
    subscriber = Subscriber.objects.create(email="ada@example.org", status=Status.ACTIVE, keywords="NeRF")
    subscriber.topics.add(topic)
    Delivery.objects.create(subscriber=subscriber, period="2026-11-25", scheduled_for=timezone.now(), subject="Hi")

    data = json.loads(json.dumps(services.export_data(subscriber)))

    assert data["email"] == "ada@example.org"
    assert data["preferences"]["topics"] == ["llms"]
    assert data["preferences"]["keywords"] == "NeRF"
    assert data["deliveries"][0]["period"] == "2026-11-25"


def test_delete_erases_the_subscriber_and_their_deliveries():
    subscriber = Subscriber.objects.create(email="ada@example.org", status=Status.ACTIVE)
    Delivery.objects.create(subscriber=subscriber, period="2026-11-25", scheduled_for=timezone.now())
    services.delete_subscriber(subscriber)
    assert not Subscriber.objects.exists() and not Delivery.objects.exists()


def test_purge_pending_deletes_only_pending_subscribers_past_the_limit(committed, settings):
    settings.PENDING_PURGE_DAYS = 14
    with time_machine.travel("2026-11-01 12:00Z", tick=False):
        subscribe(committed, "stale@example.org")
        Subscriber.objects.create(email="old-active@example.org", status=Status.ACTIVE)
    with time_machine.travel("2026-11-14 12:00Z", tick=False):
        subscribe(committed, "fresh@example.org")
    with time_machine.travel("2026-11-16 12:00Z", tick=False):
        assert tasks.purge_pending.delay().get() == 1
    assert sorted(Subscriber.objects.values_list("email", flat=True)) == ["fresh@example.org", "old-active@example.org"]


def test_purgepending_command_takes_a_number_of_days(committed, capsys):
    with time_machine.travel("2026-11-01 12:00Z", tick=False):
        subscribe(committed, "stale@example.org")
    with time_machine.travel("2026-11-04 12:00Z", tick=False):
        call_command("purgepending", "--days", "2")
    assert "deleted 1 pending subscriber" in capsys.readouterr().out
    assert not Subscriber.objects.exists()


def test_addresses_with_header_injection_are_rejected(committed):
    for address in ["ada@example.org\r\nBcc: victim@example.org", "ada@example.org, eve@example.org", "not an address"]:
        with pytest.raises(services.InvalidEmail):
            subscribe(committed, address)
    assert not Subscriber.objects.exists() and not mail.outbox


def test_subscribe_command_creates_a_confirmed_subscriber_without_email(topic):
    call_command(
        "subscribe",
        "grace@example.org",
        "--topic",
        "llms",
        "--keywords",
        "NeRF, -medical",
        "--interest",
        "3D",
        "--category",
        "cs.CV",
        "--author",
        "Ben Mildenhall",
        "--frequency",
        "weekly",
        "--max-papers",
        "5",
        "--confirmed",
    )
    subscriber = Subscriber.objects.get()
    assert subscriber.status == "active" and subscriber.next_delivery_at
    assert (subscriber.keywords, subscriber.interests, subscriber.categories) == ("NeRF, -medical", "3D", ["cs.CV"])
    assert (subscriber.authors, subscriber.frequency, subscriber.max_papers) == (["Ben Mildenhall"], "weekly", 5)
    assert [t.slug for t in subscriber.topics.all()] == ["llms"]
    assert not mail.outbox


def test_subscribe_command_without_confirmed_sends_the_opt_in_email_and_updates_existing_ones(committed, topic):
    with committed():
        call_command("subscribe", "grace@example.org")
    assert Subscriber.objects.get().status == "pending"
    assert len(mail.outbox) == 1
    call_command("subscribe", "grace@example.org", "--topic", "llms", "--confirmed")
    call_command("subscribe", "GRACE@example.org", "--max-papers", "3")
    subscriber = Subscriber.objects.get()
    assert (subscriber.status, subscriber.max_papers) == ("active", 3)


def test_subscribe_command_refuses_unknown_topics_and_categories(topic):
    with pytest.raises(CommandError, match="unknown topic"):
        call_command("subscribe", "grace@example.org", "--topic", "astrology")
    with pytest.raises(CommandError, match="not arXiv categories"):
        call_command("subscribe", "grace@example.org", "--category", "cs.XX")
    assert not Subscriber.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_simultaneous_signups_for_one_address_make_one_subscriber_and_one_email(on_postgres):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection

    start = Barrier(8)

    def sign_up(i: int) -> SignupOutcome:
        try:
            start.wait()
            return services.subscribe(
                "Race@Example.org" if i % 2 else "race@example.org", Preferences(keywords=f"k{i}")
            )
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(sign_up, range(8)))

    assert Subscriber.objects.count() == 1
    assert outcomes.count(SignupOutcome.CONFIRMATION_SENT) == 1
    assert len(mail.outbox) == 1


def test_confirming_matches_the_last_days_papers_at_once(committed):
    Paper.objects.create(
        guid="p1",
        arxiv_id="2601.00001",
        title="Sparse attention for long sequences",
        abstract="We make attention cheaper for long sequences.",
    )
    Paper.objects.create(guid="p2", arxiv_id="2601.00002", title="Protein folding", abstract="Biology.")
    subscribe(committed, keywords="attention")
    subscriber = Subscriber.objects.get()
    assert not Candidate.objects.exists()

    with committed():
        services.confirm(subscriber)

    assert [c.paper.arxiv_id for c in Candidate.objects.filter(subscriber=subscriber)] == ["2601.00001"]


def test_changing_preferences_matches_the_recent_papers_again(committed):
    Paper.objects.create(
        guid="p1", arxiv_id="2601.00003", title="Diffusion models for video", abstract="Video diffusion."
    )
    subscriber = Subscriber.objects.create(email="bo@example.org", status=Status.ACTIVE, keywords="attention")

    with committed():
        services.update_preferences(subscriber, Preferences(keywords="diffusion"))

    assert Candidate.objects.filter(subscriber=subscriber, paper__arxiv_id="2601.00003").exists()


def _reply_to_mailto(mailto: str, sender: str) -> bytes:
    """The email a mail client sends for a List-Unsubscribe mailto link."""
    from email.message import EmailMessage
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(mailto)
    reply = EmailMessage()
    reply["From"], reply["To"] = sender, parts.path
    reply["Subject"] = parse_qs(parts.query)["subject"][0]
    return reply.as_bytes()


def test_a_reply_to_the_list_unsubscribe_mailto_unsubscribes_through_the_command(monkeypatch):
    import io

    subscriber = Subscriber.objects.create(email="ada@example.org", status=Status.ACTIVE)
    reply = _reply_to_mailto(personal_links(subscriber)["unsubscribe_mailto"], "ada@example.org")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(reply)))

    call_command("mailunsubscribe", stdout=io.StringIO())

    subscriber.refresh_from_db()
    assert subscriber.status == "unsubscribed"


def test_a_mailto_reply_with_a_tampered_token_changes_nothing(monkeypatch):
    import io

    subscriber = Subscriber.objects.create(email="ada@example.org", status=Status.ACTIVE)
    mailto = personal_links(subscriber)["unsubscribe_mailto"]
    monkeypatch.setattr(
        "sys.stdin", io.TextIOWrapper(io.BytesIO(_reply_to_mailto(mailto[:-3] + "xyz", "eve@example.org")))
    )

    with pytest.raises(CommandError, match="no valid unsubscribe token"):
        call_command("mailunsubscribe")

    subscriber.refresh_from_db()
    assert subscriber.status == "active"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_pending_subscriber_confirming_as_the_purge_erases_them_is_never_erased_once_confirmed(on_postgres):
    """The confirmation commits after the purge picked the subscriber and before it deleted them
    (Django deletes the rows it collected by id): either the subscriber stays, confirmed, or the
    confirmation finds nobody; never an erased subscriber whose confirmation succeeded."""
    from threading import Thread

    from django.db import connection
    from django.db.models.signals import pre_delete

    stale = Subscriber.objects.create(email="late@example.org", status=Status.PENDING)
    Subscriber.objects.filter(id=stale.id).update(created_at=timezone.now() - timedelta(days=20))
    confirmed: dict = {}

    def confirm() -> None:
        try:
            confirmed["done"] = services.confirm(Subscriber.objects.get(id=stale.id))
        finally:
            connection.close()

    def confirmed_meanwhile(sender, instance, **kwargs):
        if instance.id == stale.id and not confirmed:
            confirmed["thread"] = Thread(target=confirm)
            confirmed["thread"].start()
            confirmed["thread"].join(1)  # it waits for the purge once the purge holds the row

    pre_delete.connect(confirmed_meanwhile, sender=Subscriber)
    try:
        purged = services.purge_pending(timedelta(days=14))
    finally:
        pre_delete.disconnect(confirmed_meanwhile, sender=Subscriber)
    confirmed["thread"].join(10)

    erased = not Subscriber.objects.filter(id=stale.id).exists()
    assert (confirmed["done"], erased, purged) == (False, True, 1)


def test_a_pending_subscriber_confirmed_after_the_purge_picked_them_stays(monkeypatch):
    """The conditions are read again under the subscriber's lock: a confirmation that committed
    between the purge's pick and its lock keeps the subscriber."""
    stale = Subscriber.objects.create(email="late@example.org", status=Status.PENDING)
    Subscriber.objects.filter(id=stale.id).update(created_at=timezone.now() - timedelta(days=20))
    lock_subscriber = services.lock_subscriber

    def confirmed_just_before(subscriber_id):
        services.confirm(Subscriber.objects.get(id=subscriber_id))
        lock_subscriber(subscriber_id)

    monkeypatch.setattr(services, "lock_subscriber", confirmed_just_before)

    assert services.purge_pending(timedelta(days=14)) == 0
    assert Subscriber.objects.get(id=stale.id).status == Status.ACTIVE
