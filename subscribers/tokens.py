"""Signed, purpose-salted, expiring tokens: nothing is stored.

A token carries the subscriber's public id and, for one-shot purposes, a fingerprint of the state
that using it changes, so it stops working once used (like django.contrib.auth's reset tokens).

A signed token is readable, not secret (base64 of compressed JSON), so it names the subscriber by
a random `public_id`, never by the sequential row id, which would tell anyone holding a link how
many subscribers there are and in which order they came. Tokens made before public ids carried
the row id (`"s"`); they are still read, each until its lifetime ends (an unsubscribe link in an
old email never does).
"""

import hashlib
import hmac
import re
import uuid
from datetime import timedelta
from functools import lru_cache

from django.conf import settings
from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

from subscribers.models import Subscriber

# A digest's web copy ("view in browser") is read within days of its email; two months still
# covers a long holiday's backlog, and as long as the "more/less like this" links of the same
# digest. After that a link that was forwarded or posted somewhere stops showing the digest.
DIGEST_LINK_LIFETIME = timedelta(days=60)

CONFIRM_LINK_LIFETIME = timedelta(days=7)

# purpose -> lifetime; None means the link works as long as the subscriber exists (unsubscribe
# links must keep working in every email ever sent).
LIFETIMES: dict[str, timedelta | None] = {
    "confirm": CONFIRM_LINK_LIFETIME,
    "manage": timedelta(days=90),
    "unsubscribe": None,
    "feedback": timedelta(days=60),
    "digest": DIGEST_LINK_LIFETIME,
}
ONE_SHOT = {"confirm"}

# SpamAssassin's __BITCOIN_ID body rule reads a run of 30-35 base58 characters as a Bitcoin
# address; about one token in 2,000 contains one, and a digest carries two dozen links.
LOOKS_LIKE_BITCOIN = re.compile(r"\b(?<!=)[13][a-km-zA-HJ-NP-Z1-9]{29,34}\b")


def _fingerprint(subscriber: Subscriber, purpose: str) -> str:
    if purpose not in ONE_SHOT:
        return ""
    sent = subscriber.confirmation_sent_at.timestamp() if subscriber.confirmation_sent_at else ""
    state = f"{subscriber.pk}:{subscriber.status}:{sent}"
    if subscriber.confirmed_at:
        # Once confirmed, every earlier link is spent for good, even if the address is pending
        # again within the hour in which no new link is sent. Appended only when set, so links
        # in flight to people who never confirmed keep working.
        state += f":{subscriber.confirmed_at.timestamp()}"
    return salted_hmac(f"paperboy.tokens.{purpose}.state", state).hexdigest()[:16]


class _PurposeSigner(signing.TimestampSigner):
    """`signing.dumps`' signer for one salt and key, with its HMAC key derived once.

    A digest carries about two dozen tokens; deriving the same HMAC key for each was a fifth of
    the cost of building it. The signatures are byte for byte those of `signing.dumps`.
    """

    def __init__(self, *, key: str, salt: str):
        super().__init__(key=key, salt=salt)
        derived = hashlib.sha256(f"{salt}signer{key}".encode()).digest()
        self._mac = hmac.new(derived, digestmod=hashlib.sha256)

    def signature(self, value, key=None):
        if key is not None and key != self.key:
            return super().signature(value, key)
        mac = self._mac.copy()
        mac.update(value.encode() if isinstance(value, str) else value)
        return signing.b64_encode(mac.digest()).decode()


@lru_cache(maxsize=64)
def _signer(purpose: str, key: str) -> _PurposeSigner:
    return _PurposeSigner(key=key, salt=f"paperboy.tokens.{purpose}")


def make_token(subscriber: Subscriber, purpose: str, extra: dict | None = None) -> str:
    if purpose not in LIFETIMES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    payload: dict[str, object] = {"u": subscriber.public_id.hex, "f": _fingerprint(subscriber, purpose)}
    if extra:
        payload["x"] = extra
    # Keyed by SECRET_KEY too, so a rotated key (or override_settings) is never signed with a stale one.
    signer = _signer(purpose, settings.SECRET_KEY)
    token = signer.sign_object(payload, compress=True)
    nonce = 0
    while LOOKS_LIKE_BITCOIN.search(token):
        nonce += 1
        token = signer.sign_object({**payload, "n": nonce}, compress=True)
    return token


def read_payload(token: str, purpose: str) -> tuple[Subscriber, dict] | None:
    """The subscriber and extra data a valid token names, or None if it is forged, expired or used."""
    found = _genuine(token, purpose)
    if found is None:
        return None
    subscriber, payload, extra = found
    if not constant_time_compare(payload.get("f", ""), _fingerprint(subscriber, purpose)):
        return None
    return subscriber, extra


def read_spent_token(token: str, purpose: str) -> Subscriber | None:
    """The subscriber a genuine, unexpired one-shot token names once it no longer works: it was
    used, or a newer one replaced it. None if it still works, or was never ours."""
    found = _genuine(token, purpose) if purpose in ONE_SHOT else None
    if found is None:
        return None
    subscriber, payload, _ = found
    if constant_time_compare(payload.get("f", ""), _fingerprint(subscriber, purpose)):
        return None
    return subscriber


def _genuine(token: str, purpose: str) -> tuple[Subscriber, dict, dict] | None:
    """(subscriber, payload, extra) of a token we signed for `purpose` and that has not expired,
    whatever the state of its subscriber."""
    if purpose not in LIFETIMES or not token or len(token) > 1000:
        return None
    lifetime = LIFETIMES[purpose]
    try:
        payload = signing.loads(token, salt=f"paperboy.tokens.{purpose}", max_age=lifetime)
    except signing.BadSignature:  # SignatureExpired is a subclass
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("f", ""), str):
        return None
    extra = payload.get("x") or {}
    subscriber = _named(payload) if isinstance(extra, dict) else None
    if subscriber is None:
        return None
    return subscriber, payload, extra


def _named(payload: dict) -> Subscriber | None:
    """The subscriber a payload names: by public id, or by row id in a token made before those."""
    public_id, row_id = payload.get("u"), payload.get("s")
    if isinstance(public_id, str):
        try:
            return Subscriber.objects.filter(public_id=uuid.UUID(hex=public_id)).first()
        except ValueError:
            return None
    if type(row_id) is int:  # not a bool
        return Subscriber.objects.filter(pk=row_id).first()
    return None


def read_token(token: str, purpose: str) -> Subscriber | None:
    found = read_payload(token, purpose)
    return found[0] if found else None
