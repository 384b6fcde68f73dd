"""The SMTP and `.eml` folder backends that EMAIL_URL selects (config/env.py parses it).

`smtp://user:pass@host:port?tls=1` (or `smtps://` for implicit TLS, `?ssl=1` too) talks SMTP;
`file:///some/folder` writes each message as one `.eml` file in that folder.
"""

import os
import smtplib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as DjangoSmtpBackend

from mail import smtp_client
from mail.mime import envelope_address, message_bytes
from mail.streams import SmtpStream


class SmtpBackend(DjangoSmtpBackend):
    """Django's SMTP backend (one connection for many messages, TLS, timeouts), sending `message_bytes`
    through the two-step client of mail/smtp_client.py."""

    connection: smtp_client.TwoStepSending | None

    @property
    def connection_class(self):
        return smtp_client.SMTP_SSL if self.use_ssl else smtp_client.SMTP

    def _envelope(self, email_message: EmailMessage) -> tuple[str, list[str]]:
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        recipients = [envelope_address(address, encoding) for address in email_message.recipients()]
        return envelope_address(email_message.from_email, encoding), recipients

    def _send(self, email_message: EmailMessage) -> bool:
        if not email_message.recipients() or self.connection is None:
            return False
        from_email, recipients = self._envelope(email_message)
        try:
            self.connection.sendmail(from_email, recipients, message_bytes(email_message))
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True

    def stream(self) -> SmtpStream:
        return SmtpStream(self)


class EmlFolderBackend(BaseEmailBackend):
    """Writes every message as its own RFC 5322 `.eml` file, named so they sort by time."""

    def __init__(self, file_path: str | None = None, fail_silently: bool = False, **kwargs: object) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)
        self.folder = Path(file_path or settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if not email_messages:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
            name = f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.eml"
            data = message_bytes(message)
            tmp = self.folder / (name + ".tmp")
            tmp.write_bytes(data)
            # Rename is atomic, so a reader never sees half a message.
            tmp.rename(self.folder / name)
            sent += 1
        return sent
