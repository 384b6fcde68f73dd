"""The pipelined message stream the send loop depends on, and the two ways a backend provides it.

listmonk's Messenger interface is the model: the send loop talks to a `MessageStream`, never to
smtplib. An SMTP backend gives an `SmtpStream`, which keeps a pipelining server busy while the
next message is built; every other backend (the `.eml` folder, anymail, Django's test backends)
an `ImmediateStream`, which sends each message in one call at `send`.
"""

import smtplib
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

from mail import smtp_client
from mail.mime import envelope_address, message_bytes

if TYPE_CHECKING:
    from mail.backends import SmtpBackend

Handle = TypeVar("Handle")


@runtime_checkable
class MessageStream(Protocol[Handle]):
    """Messages sent one after another, each in five steps:

    1. `begin` its envelope (return path, recipient, size): the handle of the message under way;
       a stream may refuse it here (a message over the server's SIZE, an unsendable address);
    2. `accept`: the envelope's answers;
    3. `send` its data (`data`, else the message's `message_bytes`), queued;
    4. `flush` what is queued: one message's data and the next envelope go out together;
    5. `verdict`: the answer to its data.

    A refusal at any step raises the exception that says what was refused (smtplib's, or
    smtp_client.UnsendableAddress); mail/refusals.py reads it.
    """

    def begin(self, from_email: str, to: str, size: int | None = None) -> Handle: ...

    def accept(self, message: Handle) -> None: ...

    def send(self, message: Handle, email_message: EmailMessage, data: bytes | None = None) -> None: ...

    def flush(self) -> None: ...

    def verdict(self, message: Handle) -> None: ...


class SmtpStream:
    """Messages sent one after another over one SmtpBackend connection, in the steps of
    mail/smtp_client.py: `begin` a message's envelope, `accept` it, `send` its data, `flush`,
    and read its `verdict`.

    A caller that flushes after queueing one message's data and the next envelope, and builds
    the next message before reading the verdict, keeps the server busy while it builds. The
    connection is opened on demand; a message whose envelope was lost with a connection that
    failed for an earlier message is begun again, once, on a new connection.
    """

    def __init__(self, backend: "SmtpBackend"):
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

    def send(self, message: "StreamedMessage", email_message: EmailMessage, data: bytes | None = None) -> None:
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

    # Set by SmtpStream._begin before the stream hands the message out.
    client: smtp_client.TwoStepSending
    transaction: smtp_client.Transaction

    def __init__(self, from_addr: str, recipients: list[str], size: int | None = None):
        self.from_addr, self.recipients, self.size = from_addr, recipients, size
        self.begun_again = False


class ImmediateStream:
    """The MessageStream of backends that send a message in one call (the `.eml` folder, anymail,
    Django's test backends): `send` sends, the other steps have nothing to do."""

    def __init__(self, backend):
        self.backend = backend

    def begin(self, from_email: str, to: str, size: int | None = None) -> None:
        return None

    def accept(self, message: None) -> None:
        pass

    def send(self, message: None, email_message: EmailMessage, data: bytes | None = None) -> None:
        self.backend.open()
        self.backend.send_messages([email_message])

    def flush(self) -> None:
        pass

    def verdict(self, message: None) -> None:
        pass


def message_stream(backend: BaseEmailBackend) -> MessageStream[Any]:
    """The backend's own stream when it has one (SmtpBackend), else an ImmediateStream."""
    stream = getattr(backend, "stream", None)
    return stream() if stream is not None else ImmediateStream(backend)
