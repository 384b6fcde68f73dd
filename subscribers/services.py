"""Every change to a subscriber: signup, confirmation, preferences, pause, bounces, unsubscribe,
erasure.

Views, the admin, commands, tasks and the delivery code call these functions; none of them writes
a status itself.
Emails are queued after the transaction commits: no page waits for SMTP, and a rolled-back change
sends nothing.
"""

import enum
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from email import policy as email_policy
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone
from email_validator import EmailNotValidError, validate_email

from config.celery import queue, queue_on_commit_or_warn, run_here
from subscribers import rematch
from subscribers.keywords import remove_keyword
from subscribers.liked_input import LikedInput
from subscribers.models import Subscriber, Topic, lock_subscriber
from subscribers.scheduling import schedule_subscriber
from subscribers.tokens import read_token

log = logging.getLogger(__name__)

# Nobody can make us email an address more often than this, whatever they submit.
EMAIL_INTERVAL = timedelta(hours=1)

Status = Subscriber.Status
SCHEDULE_FIELDS = ("timezone", "frequency", "weekday", "delivery_hour")


@dataclass
class Preferences:
    """What a subscriber chose, in the shape the signup and manage forms produce."""

    topics: list[Topic] = field(default_factory=list)
    keywords: str = ""
    interests: str = ""
    categories: list[str] = field(default_factory=list)
    category_mode: str = Subscriber.CategoryMode.BOOST
    authors: list[str] = field(default_factory=list)
    timezone: str = "UTC"
    frequency: str = Subscriber.Frequency.DAILY
    weekday: int = 0
    delivery_hour: int = 8
    max_papers: int = 10

    @classmethod
    def of(cls, subscriber: Subscriber) -> "Preferences":
        values = {name: getattr(subscriber, name) for name in SCALAR_PREFERENCES}
        return cls(topics=list(subscriber.topics.all()), **values)

    def to_data(self) -> dict:
        """JSON-ready, for a task message."""
        return {
            "topics": [topic.pk for topic in self.topics],
            **{name: getattr(self, name) for name in SCALAR_PREFERENCES},
        }

    @classmethod
    def from_data(cls, data: dict) -> "Preferences":
        topics = list(Topic.objects.filter(pk__in=data.get("topics", [])))
        return cls(topics=topics, **{name: data[name] for name in SCALAR_PREFERENCES if name in data})


SCALAR_PREFERENCES = tuple(name for name in Preferences.__dataclass_fields__ if name != "topics")


class SignupOutcome(enum.StrEnum):
    """What a signup did. Only logs and tests see it: the person always sees the same page."""

    CONFIRMATION_SENT = "confirmation_sent"
    MANAGE_LINK_SENT = "manage_link_sent"
    THROTTLED = "throttled"


class InvalidEmail(ValueError):
    pass


class UnsupportedLocalPart(InvalidEmail):
    """Letters beyond ASCII before the @: only mail servers speaking SMTPUTF8 take such an
    address, and a To: header can only carry it raw (RFC 6532), never RFC 2047-encoded."""


NON_ASCII_LOCAL_PART = (
    "We can't send to addresses with accented or non-Latin letters before the @ (like jörg@…) yet. "
    "Please use an address with plain letters, digits and . _ + - before the @."
)


def normalize_email(raw: str) -> str:
    """The address as we store it, or InvalidEmail. Syntax only: no DNS lookups.

    An internationalised domain is stored in its ASCII (punycode) form, `ana@xn--bcher-kva.example`
    for `ana@bücher.example`: one spelling per address, which every mail server accepts.
    """
    local_part = raw.strip().rpartition("@")[0]
    if not local_part.isascii():
        raise UnsupportedLocalPart(NON_ASCII_LOCAL_PART)
    try:
        ascii_email = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=False).ascii_email
    except EmailNotValidError as error:
        raise InvalidEmail(str(error)) from None
    if ascii_email is None:  # a local part that is not ASCII, refused above
        raise UnsupportedLocalPart(NON_ASCII_LOCAL_PART)
    return ascii_email


def find_by_email(email: str) -> Subscriber | None:
    # LOWER(email) = ..., the expression the unique index is built on, so the index serves it.
    return Subscriber.objects.alias(email_lower=Lower("email")).filter(email_lower=email.lower()).first()


def queue_signup(email: str, prefs: Preferences, liked: LikedInput | None = None) -> None:
    """Hand the signup to a worker. A new and a known address take different work, so doing it in
    the request would let its timing tell who subscribes; queueing costs the same for both."""
    if liked:
        _queue_or_run("subscribers.subscribe", email, prefs.to_data(), liked.to_data())
    else:
        _queue_or_run("subscribers.subscribe", email, prefs.to_data())


def queue_manage_link_request(email: str) -> None:
    """The "email me my link" form, through a worker for the same reason as queue_signup."""
    _queue_or_run("subscribers.request_manage_link", email)


def _queue_or_run(task_name: str, *args: object) -> None:
    try:
        queue(task_name, *args)
    except Exception:
        # Without a broker the page still works; only its timing is no longer uniform.
        log.exception("could not queue %s; running it in the request", task_name)
        run_here(task_name, *args)


def subscribe(email: str, prefs: Preferences, liked: LikedInput | None = None) -> SignupOutcome:
    """Sign a new address up (double opt-in); for a known address, email its owner instead.

    The form is anonymous, so it never changes what a known address has stored, whatever its
    status: a pending address gets its confirmation email again (at most one an hour), any other
    its manage link (at most one an hour), from which its owner can resubscribe with the
    preferences they kept.
    """
    email = normalize_email(email)
    subscriber = find_by_email(email)
    if subscriber is None:
        try:
            with transaction.atomic():
                subscriber = Subscriber.objects.create(email=email, status=Status.PENDING)
                _store(subscriber, prefs)
                if liked:
                    _add_liked_papers_on_commit(subscriber, liked)
        except IntegrityError:
            # A concurrent signup for the same address won the race; treat ours as a repeat.
            subscriber = find_by_email(email)
            if subscriber is None:
                raise
        else:
            return _opt_in(subscriber)
    if subscriber.status == Status.PENDING:
        return _opt_in(subscriber)
    return SignupOutcome.MANAGE_LINK_SENT if send_manage_link(subscriber) else SignupOutcome.THROTTLED


def _add_liked_papers_on_commit(subscriber: Subscriber, liked: LikedInput) -> None:
    """The digest app stores liked papers (they point at its papers): handed over by task name."""

    def queue_or_run() -> None:
        _queue_or_run("digest.add_liked_papers", subscriber.pk, liked.to_data())

    transaction.on_commit(queue_or_run)


def _opt_in(subscriber: Subscriber) -> SignupOutcome:
    return SignupOutcome.CONFIRMATION_SENT if send_confirmation(subscriber) else SignupOutcome.THROTTLED


def subscribe_by_operator(
    email: str, prefs: Preferences, *, confirmed: bool
) -> tuple[Subscriber, SignupOutcome | None]:
    """Create or update a subscriber for an operator (the `subscribe` command).

    With `confirmed` the address is active at once, without the opt-in email; the operator vouches
    for it. Without, a new or lapsed address gets the opt-in email as if it had used the form, and
    the outcome says whether it went out (CONFIRMATION_SENT) or one had within the hour
    (THROTTLED); None when no opt-in email was due.
    """
    email = normalize_email(email)
    subscriber = find_by_email(email)
    if subscriber is None or subscriber.status not in (Status.ACTIVE, Status.PAUSED):
        if subscriber is None:
            subscriber = Subscriber.objects.create(email=email, status=Status.PENDING)
        elif subscriber.status != Status.PENDING:
            subscriber.status = Status.PENDING
            subscriber.save(update_fields=["status"])
        update_preferences(subscriber, prefs)
        if confirmed:
            confirm(subscriber)
            return subscriber, None
        return subscriber, _opt_in(subscriber)
    update_preferences(subscriber, prefs)
    return subscriber, None


def _claim_email_slot(subscriber: Subscriber, stamp_field: str) -> bool:
    """Compare-and-set the stamp: only the caller that moves it may send, at most once an hour."""
    now = timezone.now()
    free = Q(**{f"{stamp_field}__isnull": True}) | Q(**{f"{stamp_field}__lte": now - EMAIL_INTERVAL})
    claimed = Subscriber.objects.filter(free, pk=subscriber.pk).update(**{stamp_field: now})
    if claimed:
        setattr(subscriber, stamp_field, now)
    return claimed == 1


def send_confirmation(subscriber: Subscriber) -> bool:
    """Queue the opt-in email unless one went out within the hour. Renews the confirm link."""
    if subscriber.status != Status.PENDING or not _claim_email_slot(subscriber, "confirmation_sent_at"):
        return False
    _queue_email("subscribers.send_confirmation", subscriber.pk, "confirmation_sent_at")
    return True


def send_manage_link(subscriber: Subscriber) -> bool:
    """Queue an email with the subscriber's manage link unless one went out within the hour."""
    if not _claim_email_slot(subscriber, "manage_link_sent_at"):
        return False
    _queue_email("subscribers.send_manage_link", subscriber.pk, "manage_link_sent_at")
    return True


def _queue_email(task_name: str, subscriber_id: int, stamp_field: str) -> None:
    """Queue after commit. If the broker is down the page still answers, and the slot is released
    so that the next attempt can send."""

    def queue_or_release() -> None:
        try:
            queue(task_name, subscriber_id)
        except Exception:
            log.exception("could not queue %s for subscriber %s", task_name, subscriber_id)
            Subscriber.objects.filter(pk=subscriber_id).update(**{stamp_field: None})

    transaction.on_commit(queue_or_release)


def request_manage_link(email: str) -> bool:
    """The "email me my link" form: a link goes to the address only if we know it."""
    subscriber = find_by_email(normalize_email(email))
    if subscriber is None or subscriber.status == Status.PENDING:
        return False
    return send_manage_link(subscriber)


def confirm(subscriber: Subscriber) -> bool:
    """Pending -> active. False if the subscriber was not pending (a second click, a race)."""
    now = timezone.now()
    changed = Subscriber.objects.filter(pk=subscriber.pk, status=Status.PENDING).update(
        status=Status.ACTIVE, confirmed_at=now, unsubscribed_at=None, bounce_count=0
    )
    if changed:
        subscriber.refresh_from_db()
        schedule_subscriber(subscriber)
        _store_interest_vector_on_commit(subscriber)
        _match_recent_papers_on_commit(subscriber)
    return changed == 1


def _match_recent_papers_on_commit(subscriber: Subscriber) -> None:
    """A new or changed set of preferences is matched against the last days' papers at once;
    otherwise the first digest would wait for papers that arrive after this moment. At most one
    such re-match waits per subscriber (subscribers/rematch.py)."""
    transaction.on_commit(partial(rematch.queue_rematch, subscriber.pk))


def update_preferences(subscriber: Subscriber, prefs: Preferences) -> None:
    with transaction.atomic():
        _store(subscriber, prefs)


def _store(subscriber: Subscriber, prefs: Preferences) -> None:
    schedule_before = [getattr(subscriber, name) for name in SCHEDULE_FIELDS]
    interests_before = subscriber.interests
    for name in SCALAR_PREFERENCES:
        setattr(subscriber, name, getattr(prefs, name))
    subscriber.save(update_fields=list(SCALAR_PREFERENCES))
    subscriber.topics.set(prefs.topics)
    if schedule_before != [getattr(subscriber, name) for name in SCHEDULE_FIELDS]:
        schedule_subscriber(subscriber)
    if subscriber.status != Status.PENDING and subscriber.interests != interests_before:
        _store_interest_vector_on_commit(subscriber)
    if subscriber.status == Status.ACTIVE:
        _match_recent_papers_on_commit(subscriber)


def _store_interest_vector_on_commit(subscriber: Subscriber) -> None:
    """A new interest's sentence vector is encoded once, by a worker, before the runs need it
    (digest/matching/vectors.py); queued by name, as the digest app stores vectors. Not for a
    pending address (anyone can type one, and runs skip it): its confirmation queues it."""
    if subscriber.interests.strip():
        queue_on_commit_or_warn(
            "digest.store_interest_vector",
            subscriber.pk,
            otherwise="the first run that matches the subscriber encodes the interest",
        )


def learned_keywords(subscriber: Subscriber) -> list[str]:
    """The terms "more/less like this" clicks wrote that are still in the subscriber's keywords
    (the reader may have deleted one by hand since)."""
    keywords = subscriber.keywords
    return [term for term in subscriber.learned_keywords if remove_keyword(keywords, term) != keywords]


def undo_learned_keyword(subscriber: Subscriber, term: str) -> bool:
    """Take one term a click wrote out of the subscriber's keywords; every other term stays. The
    category a "more" click added with it goes too, unless another learned term still holds it.

    Only a term a click wrote can be undone, so the reader's own typed keywords are never touched.
    Idempotent: False, and nothing changed, when the term is not (or no longer) a learned one.
    """
    with transaction.atomic():
        locked = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        if term not in locked.learned_keywords:
            return False
        locked.keywords = remove_keyword(locked.keywords, term)
        locked.learned_keywords = [learned for learned in locked.learned_keywords if learned != term]
        held = {learned: category for learned, category in locked.learned_categories.items() if learned != term}
        category = locked.learned_categories.get(term)
        if category and category not in held.values():
            locked.categories = [kept for kept in locked.categories if kept != category]
        locked.learned_categories = held
        locked.save(update_fields=["keywords", "learned_keywords", "learned_categories", "categories"])
        locked.marked_papers.filter(keyword=term).update(keyword="")  # the click's paper stays marked
        subscriber.keywords, subscriber.learned_keywords = locked.keywords, locked.learned_keywords
        subscriber.categories, subscriber.learned_categories = locked.categories, locked.learned_categories
        if locked.status == Status.ACTIVE:
            _match_recent_papers_on_commit(locked)
    return True


def _move(subscriber: Subscriber, from_statuses: Collection[str], to: str, **fields: object) -> bool:
    changed = Subscriber.objects.filter(pk=subscriber.pk, status__in=from_statuses).update(status=to, **fields)
    if changed:
        subscriber.refresh_from_db()
    return changed == 1


def record_bounce(subscriber_id: int) -> None:
    """Count a permanent bounce: at BOUNCE_LIMIT an active subscriber is marked bounced and gets no
    more digests. Each statement is right however many workers count at the same moment."""
    Subscriber.objects.filter(id=subscriber_id).update(bounce_count=F("bounce_count") + 1)
    Subscriber.objects.filter(id=subscriber_id, status=Status.ACTIVE, bounce_count__gte=settings.BOUNCE_LIMIT).update(
        status=Status.BOUNCED, next_delivery_at=None
    )


def pause(subscriber: Subscriber) -> bool:
    return _move(subscriber, {Status.ACTIVE}, Status.PAUSED, next_delivery_at=None)


def resume(subscriber: Subscriber) -> bool:
    resumed = _move(subscriber, {Status.PAUSED}, Status.ACTIVE)
    if resumed:
        schedule_subscriber(subscriber)
        _match_recent_papers_on_commit(subscriber)
    return resumed


def resubscribe(subscriber: Subscriber) -> bool:
    """Unsubscribed or bounced -> active, with the preferences they kept.

    Only from the manage page: its link reached the subscriber's own address, which is the proof
    of ownership a confirmation email would ask for.
    """
    now = timezone.now()
    resubscribed = _move(
        subscriber, {Status.UNSUBSCRIBED, Status.BOUNCED}, Status.ACTIVE, unsubscribed_at=None, bounce_count=0
    )
    if resubscribed:
        if subscriber.confirmed_at is None:
            Subscriber.objects.filter(pk=subscriber.pk, confirmed_at__isnull=True).update(confirmed_at=now)
            subscriber.confirmed_at = now
        schedule_subscriber(subscriber)
        _match_recent_papers_on_commit(subscriber)
    return resubscribed


def unsubscribe(subscriber: Subscriber) -> bool:
    """Stop every email. Idempotent: a second call changes nothing and returns False."""
    others = {status for status in Status if status != Status.UNSUBSCRIBED}
    return _move(subscriber, others, Status.UNSUBSCRIBED, unsubscribed_at=timezone.now(), next_delivery_at=None)


MAIL_UNSUBSCRIBE_SUBJECT = re.compile(r"\bunsubscribe\s+(\S+)", re.IGNORECASE)


def unsubscribe_by_mail(raw: bytes) -> Subscriber | None:
    """The List-Unsubscribe mailto route: an email whose subject carries an unsubscribe token.

    Returns the subscriber it unsubscribed, or None when the subject holds no valid token.
    """
    subject = str(message_from_bytes(raw, policy=email_policy.default).get("Subject", ""))
    found = MAIL_UNSUBSCRIBE_SUBJECT.search(subject)
    subscriber = read_token(found.group(1), "unsubscribe") if found else None
    if subscriber is not None:
        unsubscribe(subscriber)
    return subscriber


def delete_subscriber(subscriber: Subscriber) -> None:
    """Erase the subscriber and everything that hangs off them (matches, deliveries). Their row is
    locked first, as a click or a retraining locks it before writing their model: deleting that
    model first and the row last, an erasure and a retraining would each wait for the other."""
    with transaction.atomic():
        lock_subscriber(subscriber.pk)
        subscriber.delete()


def export_data(subscriber: Subscriber) -> dict:
    """Everything we hold about a subscriber, as JSON-ready values."""

    def stamp(value):
        return value.isoformat() if value else None

    prefs = Preferences.of(subscriber)
    deliveries = subscriber.deliveries.order_by("scheduled_for").values(
        "period", "status", "scheduled_for", "sent_at", "subject", "paper_count"
    )
    return {
        "email": subscriber.email,
        "status": subscriber.status,
        "created_at": stamp(subscriber.created_at),
        "confirmed_at": stamp(subscriber.confirmed_at),
        "unsubscribed_at": stamp(subscriber.unsubscribed_at),
        "confirmation_sent_at": stamp(subscriber.confirmation_sent_at),
        "preferences": {
            "topics": [topic.slug for topic in prefs.topics],
            **{name: getattr(prefs, name) for name in SCALAR_PREFERENCES},
        },
        "deliveries": [
            {**row, "scheduled_for": stamp(row["scheduled_for"]), "sent_at": stamp(row["sent_at"])}
            for row in deliveries
        ],
        "bounce_count": subscriber.bounce_count,
        "learned_keywords": subscriber.learned_keywords,
        "learned_categories": subscriber.learned_categories,
        # The digest app's LikedPaper rows, through their relation to the subscriber.
        "liked_papers": [
            {**row, "added_at": stamp(row["added_at"])}
            for row in subscriber.liked_papers.values("arxiv_id", "title", "paper__title", "state", "added_at")
        ],
    }


def purge_pending(older_than: timedelta) -> int:
    """Delete pending subscribers whose last confirmation email is older than `older_than`.

    Only those who never confirmed: never active (no `confirmed_at`) and never sent a digest. A
    subscriber who once was, whatever set them pending since, is never erased by this.

    One at a time, as `delete_subscriber` erases: the row locked first (`lock_subscriber`), then
    the conditions read again under the lock. Django deletes the rows it collected by id, so a
    subscriber confirmed (or sent a fresh confirmation email) after the purge picked them would
    otherwise be erased, now active.
    """
    cutoff = timezone.now() - older_than
    # `deliveries`: the digests sent to them (the digest app's Delivery rows point here).
    stale = Subscriber.objects.filter(status=Status.PENDING, confirmed_at__isnull=True, deliveries__isnull=True).filter(
        Q(confirmation_sent_at__lt=cutoff) | Q(confirmation_sent_at__isnull=True, created_at__lt=cutoff)
    )
    purged = 0
    for subscriber_id in list(stale.order_by("id").values_list("id", flat=True)):
        with transaction.atomic():
            lock_subscriber(subscriber_id)
            _, by_model = stale.filter(id=subscriber_id).delete()
        purged += by_model.get(Subscriber._meta.label, 0)
    return purged
