"""Optional DKIM signing of every message we build, when a key is configured.

Set `DKIM_PRIVATE_KEY_PATH`, `DKIM_SELECTOR` and `DKIM_DOMAIN` and publish the public key at
`<selector>._domainkey.<domain>`. The signature covers the RFC 8058 headers (List-Unsubscribe and
List-Unsubscribe-Post): mailbox providers only offer one-click unsubscribe when they are signed.
Signing happens in `message()` and `message_bytes()`, so every backend (SMTP, `.eml` folder,
anymail) sends signed bytes.
"""

from functools import lru_cache
from pathlib import Path

import dkim
from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from mail.mime import alternative_bytes, fold

SIGNED_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"MIME-Version",
    b"Content-Type",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"List-Id",
    b"Reply-To",
)


@lru_cache(maxsize=4)
def _read_key(path: str, mtime: float) -> bytes:
    return Path(path).read_bytes()


def dkim_key() -> bytes | None:
    """The private key (PEM) when DKIM is fully configured, else None."""
    path = getattr(settings, "DKIM_PRIVATE_KEY_PATH", "")
    if not (path and getattr(settings, "DKIM_SELECTOR", "") and getattr(settings, "DKIM_DOMAIN", "")):
        return None
    return _read_key(path, Path(path).stat().st_mtime)


def dkim_signature(message_bytes: bytes, key: bytes) -> str:
    """The DKIM-Signature header value for these exact bytes, unfolded onto one line."""
    header = dkim.sign(
        message_bytes,
        settings.DKIM_SELECTOR.encode(),
        settings.DKIM_DOMAIN.encode(),
        key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[h for h in SIGNED_HEADERS if h.lower() + b":" in message_bytes.lower()],
    )
    value = header.decode().split(":", 1)[1]
    # Relaxed canonicalisation ignores folding, and Django refuses header values with newlines.
    return " ".join(value.split())


class SignedEmailMultiAlternatives(EmailMultiAlternatives):
    """An EmailMultiAlternatives whose MIME message carries a DKIM-Signature when configured."""

    def message(self, *args, **kwargs):
        msg = super().message(*args, **kwargs)
        key = dkim_key()
        if key is not None:
            # The signature must be computed over the bytes a backend will send: SMTP uses CRLF.
            msg["DKIM-Signature"] = dkim_signature(msg.as_bytes(linesep="\r\n"), key)
        return msg

    def message_bytes(self) -> bytes:
        """`message().as_bytes()` with CRLF line ends, written directly when the message has our usual shape."""
        data = alternative_bytes(self)
        if data is None:
            return self.message().as_bytes(linesep="\r\n")
        key = dkim_key()
        if key is not None:
            signature = dkim_signature(data, key)
            header = fold("DKIM-Signature", signature) or f"DKIM-Signature: {signature}"
            data = header.encode("ascii") + b"\r\n" + data
        return data
