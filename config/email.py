"""EMAIL_URL parsing and the SMTP and `.eml` folder backends.

`smtp://user:pass@host:port?tls=1` (or `smtps://` for implicit TLS, `?ssl=1` too) talks SMTP;
`file:///some/folder` writes each message as one `.eml` file in that folder.
"""

import os
import smtplib
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as DjangoSmtpBackend

SMTP_BACKEND = "config.email.SmtpBackend"
EML_BACKEND = "config.email.EmlFolderBackend"


def _flag(query: dict, key: str) -> bool:
    return query.get(key, ["0"])[0].lower() in {"1", "true", "yes", "on"}


def parse_email_url(url: str, base_dir: Path) -> dict:
    """Turn EMAIL_URL into Django EMAIL_* settings."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme == "file":
        folder = unquote(parts.netloc + parts.path) or "var/outbox"
        path = Path(folder)
        if not path.is_absolute():
            path = base_dir / path
        return {"EMAIL_BACKEND": EML_BACKEND, "EMAIL_FILE_PATH": str(path)}
    if parts.scheme in {"smtp", "smtps"}:
        if not parts.hostname:
            raise ImproperlyConfigured(f"EMAIL_URL needs a host: {url!r}")
        use_ssl = parts.scheme == "smtps" or _flag(query, "ssl")
        use_tls = _flag(query, "tls")
        if use_ssl and use_tls:
            raise ImproperlyConfigured("EMAIL_URL: choose tls (STARTTLS) or ssl (implicit TLS), not both")
        return {
            "EMAIL_BACKEND": SMTP_BACKEND,
            "EMAIL_HOST": parts.hostname,
            "EMAIL_PORT": parts.port or (465 if use_ssl else 25),
            "EMAIL_HOST_USER": unquote(parts.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
            "EMAIL_USE_TLS": use_tls,
            "EMAIL_USE_SSL": use_ssl,
            "EMAIL_TIMEOUT": int(query.get("timeout", ["20"])[0]),
        }
    if parts.scheme == "console":
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if parts.scheme == "anymail":
        # anymail://sendgrid selects anymail's backend for that provider.
        return {"EMAIL_BACKEND": f"anymail.backends.{parts.netloc}.EmailBackend"}
    raise ImproperlyConfigured(f"EMAIL_URL scheme must be smtp, smtps, file, console or anymail: {url!r}")


def message_bytes(message) -> bytes:
    """What goes on the wire: the message's own `message_bytes()` when it has one (ours are
    written directly, see subscribers/mime.py), else Django's `message().as_bytes()`."""
    write = getattr(message, "message_bytes", None)
    return write() if write is not None else message.message().as_bytes(linesep="\r\n")


class SmtpBackend(DjangoSmtpBackend):
    """Django's SMTP backend (one connection for many messages, TLS, timeouts), sending `message_bytes`."""

    def _send(self, email_message) -> bool:
        from subscribers.mime import sanitized_address  # settings import this module; apps load later

        if not email_message.recipients():
            return False
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        from_email = sanitized_address(email_message.from_email, encoding)
        recipients = [sanitized_address(address, encoding) for address in email_message.recipients()]
        try:
            self.connection.sendmail(from_email, recipients, message_bytes(email_message))
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True


class EmlFolderBackend(BaseEmailBackend):
    """Writes every message as its own RFC 5322 `.eml` file, named so they sort by time."""

    _lock = threading.Lock()

    def __init__(self, file_path: str | None = None, fail_silently: bool = False, **kwargs):
        super().__init__(fail_silently=fail_silently, **kwargs)
        self.folder = Path(file_path or settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages) -> int:
        if not email_messages:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%f")
            name = f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.eml"
            data = message_bytes(message)
            tmp = self.folder / (name + ".tmp")
            tmp.write_bytes(data)
            # Rename is atomic, so a reader never sees half a message.
            tmp.rename(self.folder / name)
            sent += 1
        return sent
