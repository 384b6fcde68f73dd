"""smtplib's SMTP client, sending one message after another in as few round trips as the server allows.

`sendmail` waits for four answers per message (MAIL, RCPT, DATA, the data itself), and between
two messages the connection is idle while the sender builds the next. Here a message is a
`Transaction` in four steps: `begin` (the envelope), `accept` (its answers), `send_data` and
`verdict` (the answer to the data). When the server offers PIPELINING (RFC 2920, as Postfix, Exim
and the hosted providers do), the envelope goes out in one write, and the next message's envelope
can follow the previous message's data in the same write: the server's answers to both arrive
while the sender builds the next message. Without PIPELINING every command waits for its answer,
and a message's envelope waits until the previous message's verdict is read.

A message's size goes with its MAIL FROM when the server offers SIZE (RFC 1870), and a message
over the server's limit is refused before anything is written. What to do after each refusal
(RSET, or close on 421) and the exceptions raised are sendmail's, but for one thing: no RSET after
the answer to the data, which ends the transaction by itself (a pipelined RSET there would be read
as the next message's data).
"""

import re
import smtplib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from smtplib import (
    CRLF,
    SMTPDataError,
    SMTPException,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    quoteaddr,
)

ACCEPTED_RECIPIENT = (250, 251)
Answer = tuple[int, bytes]


class UnsendableAddress(SMTPException):
    """An address this client will not write: a local part that is not ASCII needs SMTPUTF8 (RFC
    6531) end to end, which it does not use; written any other way it would be a different,
    invalid address."""


# A line starting with a dot. Found by the regular expression engine in a third of the time
# bytes.replace takes to find none in a digest (a line break every hundred bytes slows its search).
_DOTTED_LINE = re.compile(rb"\n\.")


def with_periods_quoted(data: bytes) -> bytes:
    """The message data as DATA sends it: lines starting with a dot get another (RFC 5321 4.5.2),
    and the final `.` line. smtplib's regular expression does the same, about 30 times slower."""
    quoted = data.replace(b"\n.", b"\n..") if _DOTTED_LINE.search(data) else data
    if quoted.startswith(b"."):
        quoted = b"." + quoted
    if not quoted.endswith(b"\r\n"):
        quoted += b"\r\n"
    return quoted + b".\r\n"


# A bare dot-atom address: smtplib's quoteaddr only puts it in angle brackets, and Django's
# sanitize_address returns it unchanged.
BARE_ADDRESS = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def quoted_address(address: str) -> str:
    """smtplib's `quoteaddr`, whose address parser costs more than the rest of a command, skipped
    for bare addresses and cached for named ones (the sender of every message)."""
    return f"<{address}>" if BARE_ADDRESS.fullmatch(address) else _quoted_named(address)


@lru_cache(maxsize=64)
def _quoted_named(address: str) -> str:
    return quoteaddr(address)


@dataclass(eq=False)
class Transaction:
    """One message on a connection: its envelope and the server's answers, read in order."""

    from_addr: str
    recipients: list[str]
    size: int | None = None
    envelope: list[Answer] = field(default_factory=list)  # MAIL, each RCPT, DATA
    data_answer: Answer | None = None
    written: bool = False
    accepted: bool = False
    lost: bool = False  # the connection went before the server answered it

    def commands(self, size_option: bool) -> list[str]:
        size = f" size={self.size}" if size_option and self.size is not None else ""
        return [f"mail FROM:{quoted_address(self.from_addr)}{size}"] + [
            f"rcpt TO:{quoted_address(to)}" for to in self.recipients
        ]

    def refused(self) -> dict[str, Answer]:
        rcpts = self.envelope[1 : 1 + len(self.recipients)]
        return {
            to: answer
            for to, answer in zip(self.recipients, rcpts, strict=False)
            if answer[0] not in ACCEPTED_RECIPIENT
        }


class TwoStepSending(smtplib.SMTP):
    """The Transaction steps for smtplib.SMTP and SMTP_SSL; `sendmail` is the four in a row.

    At most two transactions are open at once: one whose data awaits its verdict and the next,
    whose envelope may already be written.
    """

    def __init__(self, *args, **kwargs):
        # Before smtplib's __init__, which connects and may close() on failure.
        self._unsent: list[bytes] = []  # written at the next read
        self._expected: deque[tuple[Transaction, str]] = deque()  # answers to come, in order
        self._open: list[Transaction] = []
        super().__init__(*args, **kwargs)

    # --- the four steps ----------------------------------------------------------------------
    def begin(self, from_addr: str, to_addrs: list[str] | str, size: int | None = None) -> Transaction:
        """Start a message's envelope: written now with PIPELINING (at the next flush or read),
        else when `accept` is called."""
        if any(not t.accepted for t in self._open) or len(self._open) >= 2:
            raise SMTPException("a transaction is still waiting for its answers")
        self.ehlo_or_helo_if_needed()
        limit = self.size_limit()
        if size is not None and limit and size > limit:
            # RFC 1870: the server would refuse it (552 5.3.4); do not make it read the message first.
            raise SMTPSenderRefused(
                552, f"5.3.4 message of {size} bytes is over the server's SIZE limit of {limit}".encode(), from_addr
            )
        recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        transaction = Transaction(from_addr, recipients, size)
        self._open.append(transaction)
        if self.has_extn("pipelining"):
            self._write_envelope(transaction)
        return transaction

    def accept(self, transaction: Transaction) -> dict[str, Answer]:
        """Read the envelope's answers: the refused recipients, or sendmail's exception (the
        transaction is then over). Afterwards the server waits for the data."""
        self._check_alive(transaction)
        if not transaction.written:  # without PIPELINING: once every earlier answer is in, one by one
            self._read_until(lambda: not self._expected)
            self._one_by_one(transaction)
        self._read_until(lambda: len(transaction.envelope) == len(transaction.recipients) + 2)
        mail, rcpts, data = transaction.envelope[0], transaction.envelope[1:-1], transaction.envelope[-1]
        refused = transaction.refused()
        if mail[0] != 250:
            self._abandon(transaction, mail[0])
            raise SMTPSenderRefused(mail[0], mail[1], transaction.from_addr)
        if any(answer[0] == 421 for answer in rcpts):
            self.close()
            raise SMTPRecipientsRefused(refused)
        if len(refused) == len(transaction.recipients):
            self._abandon(transaction, None)
            raise SMTPRecipientsRefused(refused)
        if data[0] != 354:
            self._abandon(transaction, data[0])
            raise SMTPDataError(*data)
        transaction.accepted = True
        return refused

    def send_data(self, transaction: Transaction, msg: bytes) -> None:
        """Queue the message data (written at the next flush or read)."""
        self._check_alive(transaction)
        if not transaction.accepted or transaction.data_answer is not None:
            raise SMTPException("the server has not accepted this envelope")
        self._unsent.append(with_periods_quoted(msg))
        self._expected.append((transaction, "data"))

    def verdict(self, transaction: Transaction) -> dict[str, Answer]:
        """The server's answer to the data: the refused recipients, as sendmail returns them, or
        SMTPDataError."""
        self._check_alive(transaction)
        self._read_until(lambda: transaction.data_answer is not None)
        self._open.remove(transaction)
        if transaction.data_answer is None:  # never, once _read_until returns; for the type checker
            raise SMTPException("no answer to the data was read")
        code, response = transaction.data_answer
        if code != 250:
            # No RSET: the answer to the data ends the transaction whatever it says (RFC 5321
            # 4.1.1.4), and a pipelined next envelope may already have the server reading its data.
            if code == 421:
                self.close()
            raise SMTPDataError(code, response)
        return transaction.refused()

    def size_limit(self) -> int:
        """The largest message the server takes, from its SIZE extension (RFC 1870); 0 when it
        names none."""
        declared = self.esmtp_features.get("size", "") if self.does_esmtp else ""
        return int(declared) if declared.strip().isdigit() else 0

    def flush(self) -> None:
        """Write what is queued: a message's data and the next envelope go out in one write."""
        if self._unsent:
            data, self._unsent = b"".join(self._unsent), []
            self.send(data)

    # --- smtplib's interface -----------------------------------------------------------------
    def sendmail(self, from_addr, to_addrs, msg, mail_options=(), rcpt_options=()):
        if isinstance(msg, str) or mail_options or rcpt_options:
            return super().sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)
        transaction = self.begin(from_addr, to_addrs, size=len(msg))
        self.accept(transaction)
        self.send_data(transaction, msg)
        return self.verdict(transaction)

    def quit(self):
        # QUIT in the middle of a message would be read as its data: just hang up (the server
        # then discards the unfinished message).
        if self._expected or any(t.data_answer is None for t in self._open):
            self.close()
            return (221, b"closed")
        return super().quit()

    def close(self):
        for transaction in self._open:
            transaction.lost = True
        self._unsent, self._expected, self._open = [], deque(), []
        super().close()

    # --- the wire ----------------------------------------------------------------------------
    def _write_envelope(self, transaction: Transaction) -> None:
        commands = transaction.commands(self.does_esmtp and self.has_extn("size")) + ["data"]
        for command in commands:
            if "\r" in command or "\n" in command:
                raise ValueError(f"command contains a line break: {command!r}")
        self._unsent.append("".join(command + CRLF for command in commands).encode(self.command_encoding))
        self._expected.extend((transaction, "envelope") for _ in commands)
        transaction.written = True

    def _one_by_one(self, transaction: Transaction) -> None:
        """Without PIPELINING: each command after the previous answer, stopping where sendmail
        stops; the commands not sent are answered "not sent", so the envelope has all its answers."""
        transaction.written = True
        for command in transaction.commands(self.does_esmtp and self.has_extn("size")):
            self.putcmd(command)
            transaction.envelope.append(self._reply())
            if transaction.envelope[0][0] != 250 or transaction.envelope[-1][0] == 421:
                break
        else:
            if any(answer[0] in ACCEPTED_RECIPIENT for answer in transaction.envelope[1:]):
                self.putcmd("data")
                transaction.envelope.append(self._reply())
        transaction.envelope += [(503, b"not sent")] * (len(transaction.recipients) + 2 - len(transaction.envelope))

    def _read_until(self, done: Callable[[], bool]) -> None:
        """Read answers in the order they come, each into its transaction, until `done()`."""
        self.flush()
        while not done():
            if not self._expected:
                raise SMTPException("no answer is expected")
            transaction, kind = self._expected.popleft()
            answer = self._reply()
            if kind == "data":
                transaction.data_answer = answer
            elif kind == "envelope":
                transaction.envelope.append(answer)

    def _reply(self) -> Answer:
        try:
            return self.getreply()
        except SMTPServerDisconnected:
            self.close()
            raise

    def _check_alive(self, transaction: Transaction) -> None:
        if transaction.lost:
            raise SMTPServerDisconnected("the connection was lost before the server answered this message")

    def _abandon(self, transaction: Transaction, code: int | None) -> None:
        """End a transaction that will not send its message: close on 421, else RSET.

        A pipelining server may have said 354 to a DATA whose recipients it refused: an empty
        message ends that data before the RSET (RFC 2920, section 3.1).
        """
        self._open.remove(transaction)
        if code == 421:
            self.close()
            return
        if transaction.envelope[-1][0] == 354:
            self._queue_ignored(b".\r\n", transaction)
        self._queue_ignored(b"RSET\r\n", transaction)

    def _queue_ignored(self, command: bytes, transaction: Transaction) -> None:
        """A command whose answer is read in turn and dropped (so later answers stay in step)."""
        self._unsent.append(command)
        self._expected.append((transaction, "ignored"))


class SMTP(TwoStepSending, smtplib.SMTP):
    pass


class SMTP_SSL(TwoStepSending, smtplib.SMTP_SSL):  # smtplib's name
    pass
