"""EMAIL_URL parsing and the SMTP and `.eml` folder backends.

`smtp://user:pass@host:port?tls=1` (or `smtps://` for implicit TLS, `?ssl=1` too) talks SMTP;
`file:///some/folder` writes each message as one `.eml` file in that folder.
"""

import os
import smtplib
import threading
import uuid
from datetime import datetime, timezone
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as DjangoSmtpBackend

from mail import smtp_client

SMTP_BACKEND = "mail.backends.SmtpBackend"
EML_BACKEND = "mail.backends.EmlFolderBackend"


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


# The token of a VERP return path and the "+" before it (mail/return_path.py): a local part holds
# 64 octets (RFC 5321 4.5.3.1.1), so the bounce mailbox's own part may have the rest.
VERP_SUFFIX_CHARS = 39


def parse_bounce_address(value: str, from_email: str, *, verp: bool) -> str:
    """BOUNCE_ADDRESS, or bounces@ the domain of the From address when it is empty."""
    address = value or f"bounces@{parseaddr(from_email)[1].rpartition('@')[2] or 'localhost'}"
    local, _, domain = address.rpartition("@")
    if not (local and domain) or not address.isascii() or any(c.isspace() or c in '<>"(),;' for c in address):
        raise ImproperlyConfigured(f"BOUNCE_ADDRESS must be a bare address such as bounces@example.org, got {address!r}")
    if verp and len(local) > 64 - VERP_SUFFIX_CHARS:
        raise ImproperlyConfigured(
            f"BOUNCE_ADDRESS: with BOUNCE_VERP the part before @ has at most {64 - VERP_SUFFIX_CHARS} characters, got {local!r}"
        )
    return address


def message_bytes(message) -> bytes:
    """What goes on the wire: the message's own `message_bytes()` when it has one (ours are
    written directly, see mail/mime.py), else Django's `message().as_bytes()`."""
    write = getattr(message, "message_bytes", None)
    return write() if write is not None else message.message().as_bytes(linesep="\r\n")


def envelope_address(address: str, encoding: str = "utf-8") -> str:
    """The address as MAIL FROM and RCPT TO write it; UnsendableAddress for a local part that is not
    ASCII (Django would write it as an RFC 2047 encoded word: another, invalid address)."""
    from mail.mime import sanitized_address  # settings import this module; apps load later

    if not address.isascii() and not parseaddr(address)[1].rpartition("@")[0].isascii():
        raise smtp_client.UnsendableAddress(f"{address!r}: a local part that is not ASCII needs SMTPUTF8, which Paperboy does not use")
    return sanitized_address(address, encoding)


class SmtpBackend(DjangoSmtpBackend):
    """Django's SMTP backend (one connection for many messages, TLS, timeouts), sending `message_bytes`
    through the two-step client of mail/smtp_client.py."""

    @property
    def connection_class(self):
        return smtp_client.SMTP_SSL if self.use_ssl else smtp_client.SMTP

    def _envelope(self, email_message) -> tuple[str, list[str]]:
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        recipients = [envelope_address(address, encoding) for address in email_message.recipients()]
        return envelope_address(email_message.from_email, encoding), recipients

    def _send(self, email_message) -> bool:
        if not email_message.recipients():
            return False
        from_email, recipients = self._envelope(email_message)
        try:
            self.connection.sendmail(from_email, recipients, message_bytes(email_message))
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True

    def stream(self) -> "SmtpStream":
        return SmtpStream(self)


class SmtpStream:
    """Messages sent one after another over one SmtpBackend connection, in the steps of
    mail/smtp_client.py: `begin` a message's envelope, `accept` it, `send` its data, `flush`,
    and read its `verdict`.

    A caller that flushes after queueing one message's data and the next envelope, and builds
    the next message before reading the verdict, keeps the server busy while it builds. The
    connection is opened on demand; a message whose envelope was lost with a connection that
    failed for an earlier message is begun again, once, on a new connection.
    """

    def __init__(self, backend: SmtpBackend):
        self.backend = backend

    def begin(self, from_email: str, to: str, size: int | None = None) -> "StreamedMessage":
        """Begin a message's envelope; `size`, its data's length, is declared when the server
        offers SIZE, and a message over the server's limit is refused here."""
        message = StreamedMessage(envelope_address(from_email), [envelope_address(to)], size)
        self._begin(message)
        return message

    def accept(self, message: "StreamedMessage") -> None:
        if message.transaction.lost and not message.transaction.envelope and not message.begun_again:
            message.begun_again = True
            self._begin(message)
        self._connected(message).accept(message.transaction)

    def send(self, message: "StreamedMessage", email_message, data: bytes | None = None) -> None:
        """Queue the data of `email_message` (its `message_bytes`, unless given), whose recipients
        must be the envelope's. The envelope sender may differ from its From: that is where
        bounces go (mail/return_path.py)."""
        if self.backend._envelope(email_message)[1] != message.recipients:
            raise ValueError("the message's recipients differ from the envelope begun for it")
        self.send_bytes(message, message_bytes(email_message) if data is None else data)

    def send_bytes(self, message: "StreamedMessage", data: bytes) -> None:
        self._connected(message).send_data(message.transaction, data)

    def flush(self) -> None:
        if self.backend.connection is not None:
            self.backend.connection.flush()

    def verdict(self, message: "StreamedMessage") -> None:
        self._connected(message).verdict(message.transaction)

    def _begin(self, message: "StreamedMessage") -> None:
        if self.backend.connection is not None and self.backend.connection.sock is None:
            self.backend.connection = None  # the client hung up (a 421, a dropped connection): open anew
        self.backend.open()
        if self.backend.connection is None:  # open() failed silently
            raise smtplib.SMTPServerDisconnected("could not connect to the mail server")
        message.client = self.backend.connection
        message.transaction = message.client.begin(message.from_addr, message.recipients, message.size)

    def _connected(self, message: "StreamedMessage") -> smtp_client.TwoStepSending:
        if message.client is not self.backend.connection or message.transaction.lost:
            raise smtplib.SMTPServerDisconnected("the connection was lost before the server answered this message")
        return message.client


class StreamedMessage:
    """A message under way in an SmtpStream: its envelope and the connection it was begun on."""

    def __init__(self, from_addr: str, recipients: list[str], size: int | None = None):
        self.from_addr, self.recipients, self.size = from_addr, recipients, size
        self.client: smtp_client.TwoStepSending | None = None
        self.transaction: smtp_client.Transaction | None = None
        self.begun_again = False


class ImmediateStream:
    """The steps of SmtpStream for backends that send a message in one call (the `.eml` folder,
    anymail, Django's test backends): `send` sends, the other steps have nothing to do."""

    def __init__(self, backend):
        self.backend = backend

    def begin(self, from_email: str, to: str, size: int | None = None) -> None:
        return None

    def accept(self, message: None) -> None:
        pass

    def send(self, message: None, email_message, data: bytes | None = None) -> None:
        self.backend.open()
        self.backend.send_messages([email_message])

    def flush(self) -> None:
        pass

    def verdict(self, message: None) -> None:
        pass


def message_stream(backend) -> SmtpStream | ImmediateStream:
    stream = getattr(backend, "stream", None)
    return stream() if stream is not None else ImmediateStream(backend)


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
