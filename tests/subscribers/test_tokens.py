"""Tokens cannot be forged, replayed across purposes or used after they expire (hypothesis)."""

from datetime import timedelta

import pytest
import time_machine
from django.core import signing
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subscribers import services
from subscribers.models import Subscriber
from subscribers.tokens import LIFETIMES, LOOKS_LIKE_BITCOIN, _fingerprint, make_token, read_payload, read_token

pytestmark = pytest.mark.django_db

PURPOSES = sorted(LIFETIMES)
EXPIRING = sorted(purpose for purpose, lifetime in LIFETIMES.items() if lifetime)
examples = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def subscriber(status=Subscriber.Status.PENDING) -> Subscriber:
    found, _ = Subscriber.objects.get_or_create(
        email="ada@example.org", defaults={"status": status, "confirmation_sent_at": timezone.now()}
    )
    return found


@examples
@given(purpose=st.sampled_from(PURPOSES), extra=st.dictionaries(st.text(max_size=8), st.integers(), max_size=3))
def test_a_token_reads_back_as_its_subscriber_and_extra_data(purpose, extra):
    owner = subscriber()
    assert read_payload(make_token(owner, purpose, extra), purpose) == (owner, extra)


@examples
@given(made_for=st.sampled_from(PURPOSES), used_for=st.sampled_from(PURPOSES))
def test_a_token_is_never_accepted_for_another_purpose(made_for, used_for):
    token = make_token(subscriber(), made_for)
    assert (read_token(token, used_for) is not None) == (made_for == used_for)


@examples
@given(data=st.data(), purpose=st.sampled_from(PURPOSES))
def test_changing_any_character_of_a_token_makes_it_worthless(data, purpose):
    token = make_token(subscriber(), purpose)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from("AZaz09-_:.").filter(lambda c: c != token[position]))
    forged = token[:position] + replacement + token[position + 1 :]
    assert read_token(forged, purpose) is None


@examples
@given(text=st.text(max_size=300), purpose=st.sampled_from(PURPOSES))
def test_arbitrary_text_is_never_a_valid_token(text, purpose):
    subscriber()
    assert read_token(text, purpose) is None


@examples
@given(purpose=st.sampled_from(PURPOSES), other_id=st.integers(-(2**40), 2**40))
def test_a_payload_signed_with_another_key_or_salt_is_refused(purpose, other_id):
    owner = subscriber()
    for payload in ({"s": owner.pk, "f": ""}, {"s": other_id, "f": ""}):
        foreign_key = signing.dumps(payload, key="not-our-secret", salt=f"paperboy.tokens.{purpose}", compress=True)
        no_salt = signing.dumps(payload, compress=True)
        assert read_token(foreign_key, purpose) is None
        assert read_token(no_salt, purpose) is None


@examples
@given(purpose=st.sampled_from(EXPIRING), seconds=st.integers(1, 10 * 24 * 3600))
def test_an_expiring_token_works_until_its_lifetime_and_never_after(purpose, seconds):
    owner = subscriber()
    lifetime = LIFETIMES[purpose]
    with time_machine.travel(timezone.now(), tick=False) as clock:
        token = make_token(owner, purpose)
        clock.shift(lifetime - timedelta(seconds=1))
        assert read_token(token, purpose) == owner
        clock.shift(timedelta(seconds=1 + seconds))
        assert read_token(token, purpose) is None


def test_a_confirmation_token_stops_working_once_used():
    owner = subscriber()
    token = make_token(owner, "confirm")
    assert read_token(token, "confirm") == owner
    services.confirm(owner)
    assert read_token(token, "confirm") is None


def test_a_new_confirmation_email_retires_the_previous_link():
    owner = subscriber()
    old = make_token(owner, "confirm")
    Subscriber.objects.filter(pk=owner.pk).update(confirmation_sent_at=timezone.now() + timedelta(hours=2))
    owner.refresh_from_db()
    assert read_token(old, "confirm") is None
    assert read_token(make_token(owner, "confirm"), "confirm") == owner


def test_tokens_of_a_deleted_subscriber_name_nobody():
    owner = subscriber(Subscriber.Status.ACTIVE)
    tokens = {purpose: make_token(owner, purpose) for purpose in PURPOSES}
    services.delete_subscriber(owner)
    assert all(read_token(token, purpose) is None for purpose, token in tokens.items())


def test_unknown_purposes_are_a_programming_error():
    with pytest.raises(ValueError):
        make_token(subscriber(), "anything")
    assert read_token("whatever", "anything") is None


@pytest.mark.django_db
def test_no_token_looks_like_a_bitcoin_address_to_spam_filters_and_every_one_still_reads():
    subscriber = Subscriber.objects.create(email="ada@example.org", status="active")
    tokens = [make_token(subscriber, "feedback", {"p": n, "d": "more"}) for n in range(6000)]

    assert not [token for token in tokens if LOOKS_LIKE_BITCOIN.search(token)]
    assert all(read_payload(token, "feedback")[1]["p"] == n for n, token in enumerate(tokens))


# --- what a token tells whoever holds it ---------------------------------------------------------


def readable_payload(token: str) -> dict:
    """What anyone can read from a token without our key (signing only signs, it does not encrypt)."""
    import json
    import zlib

    data = token.split(":")[0]
    raw = signing.b64_decode(data.removeprefix(".").encode())
    return json.loads(zlib.decompress(raw) if data.startswith(".") else raw)


def test_a_token_names_its_subscriber_by_a_random_id_never_the_sequential_row_id():
    first = Subscriber.objects.create(email="first@example.org", status="active")
    second = Subscriber.objects.create(email="second@example.org", status="active")

    for owner in (first, second):
        for purpose in PURPOSES:
            payload = readable_payload(make_token(owner, purpose, {"d": 7}))
            assert set(payload) <= {"u", "f", "x", "n"} and "s" not in payload
            assert payload["u"] == owner.public_id.hex
    assert first.public_id != second.public_id and first.public_id.int + 1 != second.public_id.int


def legacy_token(owner: Subscriber, purpose: str, extra: dict | None = None) -> str:
    """A token as made before public ids: the row id under "s"."""

    payload = {"s": owner.pk, "f": _fingerprint(owner, purpose), **({"x": extra} if extra else {})}
    return signing.dumps(payload, salt=f"paperboy.tokens.{purpose}", compress=True)


def test_links_sent_before_public_ids_keep_working_until_they_expire():
    owner = subscriber(Subscriber.Status.ACTIVE)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        sent = {purpose: legacy_token(owner, purpose, {"d": 1}) for purpose in PURPOSES}
        assert all(read_payload(token, purpose) == (owner, {"d": 1}) for purpose, token in sent.items())
        clock.shift(timedelta(days=89))
        assert read_token(sent["manage"], "manage") == owner
        clock.shift(timedelta(days=2))
        assert read_token(sent["manage"], "manage") is None
        clock.shift(timedelta(days=5 * 365))
        assert read_token(sent["unsubscribe"], "unsubscribe") == owner, "an old email's unsubscribe link still works"


def test_an_old_confirmation_link_still_works_once():
    owner = subscriber()
    token = legacy_token(owner, "confirm")
    assert read_token(token, "confirm") == owner
    services.confirm(owner)
    assert read_token(token, "confirm") is None


@examples
@given(public_id=st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.integers(), max_size=2)))
def test_a_signed_payload_with_a_malformed_public_id_names_nobody(public_id):
    subscriber()
    token = signing.dumps({"u": public_id, "f": ""}, salt="paperboy.tokens.manage", compress=True)
    assert read_token(token, "manage") is None


def test_a_signed_payload_naming_a_row_by_true_names_nobody():
    """JSON true is a Python int subclass: it must not read as row id 1."""
    subscriber()
    token = signing.dumps({"s": True, "f": ""}, salt="paperboy.tokens.unsubscribe", compress=True)
    assert read_token(token, "unsubscribe") is None


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_every_existing_subscriber_its_own_public_id():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("subscribers", "0002_manage_link_sent_at")], [("subscribers", "0003_subscriber_public_id")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    executor.loader.build_graph()
    Old = executor.loader.project_state(before).apps.get_model("subscribers", "Subscriber")
    Old.objects.bulk_create(Old(email=f"reader{n}@example.org", status="active") for n in range(2500))

    executor.migrate(after)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    ids = list(Subscriber.objects.values_list("public_id", flat=True))
    assert len(ids) == 2500 and None not in ids and len(set(ids)) == 2500
