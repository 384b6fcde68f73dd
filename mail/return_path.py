"""Each digest's own return path (VERP): `bounces+<token>@<domain>`, the token naming its Delivery.

A mail server that cannot deliver a message reports it to the envelope sender (the Return-Path),
not to the From address. When every digest goes out with a return path of its own, signed, a
bounce that comes back to it proves which digest it answers: only the mail systems the digest
passed through ever saw that address. Anyone can write a bounce report naming any subscriber;
no one without SECRET_KEY can write a token.

The token is `<delivery id in base 36>.<24 base-32 characters of an HMAC-SHA256>` (120 bits),
salted for this one purpose like the project's other tokens, at most 38 characters: with "+" it
fits the 64 octets of a local part beside a bounce mailbox name of up to 25 (config/env.py,
VERP_SUFFIX_CHARS). It is lower case because some mail systems fold the case of local parts.
"""

import base64
import hashlib
import hmac
import re
from functools import lru_cache

from django.conf import settings

SALT = "paperboy.tokens.return-path"
SIGNATURE_CHARS = 24
_SIGNED_BYTES = SIGNATURE_CHARS * 5 // 8
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
TOKEN = re.compile(rf"([0-9a-z]{{1,13}})\.([a-z2-7]{{{SIGNATURE_CHARS}}})")


@lru_cache(maxsize=8)
def _mac(secret: str) -> "hmac.HMAC":
    # The key derived as django.core.signing derives a salted signer's key, once per secret.
    return hmac.new(hashlib.sha256(f"{SALT}signer{secret}".encode()).digest(), digestmod=hashlib.sha256)


def _signature(delivery_id: int, secret: str) -> str:
    mac = _mac(secret).copy()
    mac.update(str(delivery_id).encode())
    # Base 32 writes each 5 bytes as 8 characters: the first 15 bytes are the first 24 characters,
    # and Python's encoder (a loop in Python) then has 3 groups to write, not 7.
    return base64.b32encode(mac.digest()[:_SIGNED_BYTES]).decode().lower()


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = _BASE36[digit] + digits
        if not number:
            return digits


def return_path_token(delivery_id: int) -> str:
    return f"{_base36(delivery_id)}.{_signature(delivery_id, settings.SECRET_KEY)}"


def return_path(delivery_id: int) -> str:
    """The envelope sender of this delivery's digest: its VERP address, or BOUNCE_ADDRESS when
    BOUNCE_VERP is off."""
    if not settings.BOUNCE_VERP:
        return settings.BOUNCE_ADDRESS
    local, _, domain = settings.BOUNCE_ADDRESS.rpartition("@")
    return f"{local}+{return_path_token(delivery_id)}@{domain}"


def delivery_id_from(address: str) -> int | None:
    """The Delivery a return path names, when its token is ours (under SECRET_KEY or one of
    SECRET_KEY_FALLBACKS); None for any other address."""
    local = address.strip().strip("<>").rpartition("@")[0]
    found = TOKEN.fullmatch(local.rpartition("+")[2].lower()) if "+" in local else None
    if found is None:
        return None
    delivery_id = int(found.group(1), 36)
    for secret in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
        if hmac.compare_digest(found.group(2), _signature(delivery_id, secret)):
            return delivery_id
    return None
