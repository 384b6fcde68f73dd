"""A real SMTP server (aiosmtpd) in the test process, on an ephemeral port.

    with SmtpSink() as sink:
        sink.script("a@example.com", "451 4.7.1 Try again later")   # first attempt, then 250
        sink.always("b@example.com", "550 5.1.1 No such user")
        ... EMAIL_HOST="127.0.0.1", EMAIL_PORT=sink.port ...
        sink.count_for("a@example.com") == 1

Answers are given per recipient at RCPT time; the word `disconnect` instead drops the connection
once the message data has arrived, before answering it. The answer to the data itself can refuse
the message: for every message (`SmtpSink(data_answer="554 5.7.1 Rejected as spam")`) or for one
recipient's (`sink.refuse_data("b@example.com", "552 5.3.4 Too big")`). A message counts as
received only when the sink answered 250 to its data, as a real mail server would. With
`pipelining=True` the sink offers PIPELINING (RFC 2920), as Postfix and the hosted providers do:
aiosmtpd reads commands in order from a buffered stream, which is all that pipelining asks of a
server. It always offers SIZE (RFC 1870), with `size_limit` (aiosmtpd's default: 32 MiB), and
keeps the MAIL FROM parameters of what it receives.
"""

import asyncio
import email
import email.policy
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from config.env import SMTP_BACKEND

DISCONNECT = "disconnect"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...] = ()

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


class _EphemeralController(Controller):
    """Binds port 0 and learns the port the system chose before checking the server answers."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _Handler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.sink.connections += 1
        if self.sink.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.sink._answer_for(address)
        if answer == DISCONNECT:
            session.disconnect_after_data = True
        elif answer and not answer.startswith("2"):
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.sink.data_delay:
            await asyncio.sleep(self.sink.data_delay)
        if self.sink._held:
            self.sink.held_now += 1
            try:
                while self.sink._held:
                    await asyncio.sleep(0.01)  # a killed client's connection_lost cancels us here
            finally:
                self.sink.held_now -= 1
        if getattr(session, "disconnect_after_data", False):
            session.disconnect_after_data = False
            server.transport.close()
            return "421 4.4.2 Connection dropped"
        refusal = self.sink._data_answer_for(envelope.rcpt_tos)
        if refusal:
            self.sink.refused_data += 1
            return refusal
        self.sink._accept(
            Received(
                envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.content), tuple(envelope.mail_options)
            )
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    """Counts and keeps what it accepts; answers what the test scripted for each recipient."""

    def __init__(
        self, *, data_delay: float = 0.0, pipelining: bool = False, data_answer: str = "", size_limit: int | None = None
    ):
        self.data_delay = data_delay
        self.pipelining = pipelining
        self.data_answer = data_answer  # a refusal of every message's data, when set
        self.received: list[Received] = []
        self.refused_data = 0  # messages whose data arrived and was refused
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._always: dict[str, str] = {}
        self._data_refusals: dict[str, str] = {}
        self._lock = threading.Lock()
        self._held = False
        self.held_now = 0  # messages whose data arrived and wait, unanswered, for release()
        self.connections = 0
        limit = {} if size_limit is None else {"data_size_limit": size_limit}
        self._controller = _EphemeralController(_Handler(self), hostname="127.0.0.1", port=0, ready_timeout=10, **limit)

    # --- scripting -----------------------------------------------------------------------------
    def script(self, recipient: str, *answers: str) -> None:
        """Answers for the next attempts to `recipient`, one per attempt; then 250."""
        with self._lock:
            self._scripts[recipient.lower()].extend(answers)

    def always(self, recipient: str, answer: str) -> None:
        with self._lock:
            self._always[recipient.lower()] = answer

    def refuse_data(self, recipient: str, answer: str) -> None:
        """Answer `answer` to the data of every message to `recipient`, after accepting its envelope."""
        with self._lock:
            self._data_refusals[recipient.lower()] = answer

    def hold(self) -> None:
        """Stop answering message data until `release()`: clients hang mid-send."""
        self._held = True

    def release(self) -> None:
        self._held = False

    def _answer_for(self, address: str) -> str:
        with self._lock:
            key = address.lower()
            if self._scripts[key]:
                return self._scripts[key].popleft()
            return self._always.get(key, "")

    def _data_answer_for(self, recipients: list[str]) -> str:
        with self._lock:
            found = [self._data_refusals[r.lower()] for r in recipients if r.lower() in self._data_refusals]
        return found[0] if found else self.data_answer

    def _accept(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    # --- reading -------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self._controller.port

    def per_recipient(self) -> Counter:
        with self._lock:
            return Counter(rcpt.lower() for item in self.received for rcpt in item.rcpt_tos)

    def count_for(self, recipient: str) -> int:
        return self.per_recipient()[recipient.lower()]

    def messages_for(self, recipient: str) -> list[EmailMessage]:
        with self._lock:
            return [r.message for r in self.received if recipient.lower() in (t.lower() for t in r.rcpt_tos)]

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.received) >= count:
                return True
            time.sleep(0.02)
        return len(self.received) >= count

    def email_settings(self) -> dict:
        """Django settings that point the SMTP backend at this sink."""
        return {
            "EMAIL_BACKEND": SMTP_BACKEND,
            "EMAIL_HOST": self.host,
            "EMAIL_PORT": self.port,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "EMAIL_TIMEOUT": 10,
        }

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "SmtpSink":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._held = False
        self._controller.stop()

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
