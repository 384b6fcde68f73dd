"""What a mail server's refusal of a digest means: the reader's address, our message, or a moment.

Only a refusal of the address counts towards BOUNCE_LIMIT. A server that refuses the message
itself (too large, its content, our DMARC or SPF, our IP on a block list) would refuse it to every
reader: were that counted as each reader's bounce, every subscriber would be marked bounced after
BOUNCE_LIMIT digests. A message refusal fails the delivery with its reason, counts nothing, and
raises the alarm of digest/delivery/refusal_alarm.py.

The mapping, by enhanced status code (RFC 3463, "class.subject.detail") and by the command that
was refused; the same for an SMTP answer and for a delivery status notification:

    4.x.x, 4xx                          TRANSIENT      retried later
    5.1.x but 5.1.7 and 5.1.8           RECIPIENT      bad mailbox, system or syntax, moved, null MX
    5.2.1                               RECIPIENT      mailbox disabled
    5.2.2                               MAILBOX_FULL   "should be used as a persistent transient
                                                       failure": retried over SMTP, a DSN fails
                                                       the digest; never counted
    5.1.7, 5.1.8                        MESSAGE        our sender's address or system
    5.2.3, 5.3.4                        MESSAGE        message too long, too big
    5.5.x                               MESSAGE        protocol (ours)
    5.6.x                               MESSAGE        media: the content
    5.7.1                               RECIPIENT      when the answer to RCPT TO, else MESSAGE
    other 5.7.x                         MESSAGE        policy: 5.7.26 DMARC, 5.7.23 SPF, 5.7.25 rDNS...
    other 5.x.x, or no enhanced code    RECIPIENT      when the answer to RCPT TO, else MESSAGE
      (a bare 550, 5.0.0, 5.4.1...)

So a 5xx to RCPT TO is the reader's bounce unless its code says it is about the message or about
us; a 5xx to MAIL FROM, to DATA or after the data is a message refusal unless its code names the
recipient's mailbox. In a DSN the command is read from the diagnostic ("in reply to RCPT TO
command", Postfix; "after RCPT TO", Exim; "Recipient address rejected"); when nothing says, a
5.7.1 is taken as a message refusal.
"""

import re
import smtplib
from enum import Enum


class Refusal(Enum):
    RECIPIENT = "recipient"
    MESSAGE = "message"
    MAILBOX_FULL = "mailbox full"
    TRANSIENT = "transient"


class Phase(Enum):
    MAIL = "MAIL FROM"
    RCPT = "RCPT TO"
    DATA = "DATA"
    UNKNOWN = "unknown"


# (subject, detail) of a 5.x.x code; a subject alone stands for all its details.
ABOUT_THE_MESSAGE = {("1", "7"), ("1", "8"), ("2", "3"), ("3", "4"), ("5", ""), ("6", ""), ("7", "")}
ABOUT_THE_RECIPIENT = {("1", ""), ("2", "1")}

ENHANCED_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_RCPT_PHASE = re.compile(r"RCPT\s+TO|recipient address rejected", re.IGNORECASE)
_DATA_PHASE = re.compile(r"end\s+of\s+data|DATA\s+command|after\s+DATA", re.IGNORECASE)


def classify(status: str, phase: Phase) -> Refusal:
    """The kind of a refusal from its enhanced status ("5.1.1"; "5" or "" when the server gave none,
    with the reply's first digit) and the command it answered."""
    klass, subject, detail = (status.split(".") + ["", ""])[:3]
    if klass != "5":
        return Refusal.TRANSIENT
    if (subject, detail) == ("2", "2"):
        return Refusal.MAILBOX_FULL
    if (subject, detail) == ("7", "1"):
        return Refusal.RECIPIENT if phase is Phase.RCPT else Refusal.MESSAGE
    if (subject, detail) in ABOUT_THE_MESSAGE or (subject, "") in ABOUT_THE_MESSAGE:
        return Refusal.MESSAGE
    if (subject, detail) in ABOUT_THE_RECIPIENT or (subject, "") in ABOUT_THE_RECIPIENT:
        return Refusal.RECIPIENT
    return Refusal.RECIPIENT if phase is Phase.RCPT else Refusal.MESSAGE


def reply_status(code: int, text: bytes | str) -> str:
    """The enhanced status code a reply starts with ("550 5.1.1 ..."), else the reply's class digit."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    found = ENHANCED_STATUS.match(text.strip())
    if found and found.group(1) == str(code)[:1]:
        return found.group(0)
    return str(code)[:1]


def diagnostic_phase(*texts: str) -> Phase:
    """The command a reported refusal answered, as far as a DSN's words say."""
    for text in texts:
        if _RCPT_PHASE.search(text):
            return Phase.RCPT
        if _DATA_PHASE.search(text):
            return Phase.DATA
    return Phase.UNKNOWN


def smtp_refusal(error: Exception) -> Refusal:
    """The kind of refusal an exception from sending a digest stands for."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        answers = list(error.recipients.values())
        if not answers or any(code < 500 for code, _ in answers):
            return Refusal.TRANSIENT
        code, text = answers[0]  # a digest has one recipient
        return classify(reply_status(code, text), Phase.RCPT)
    if isinstance(error, smtplib.SMTPResponseException):
        # SMTPSenderRefused: MAIL FROM; SMTPDataError: DATA or the data; others (a 554 greeting,
        # a 535 for our credentials) refuse all our mail.
        phase = (
            Phase.MAIL
            if isinstance(error, smtplib.SMTPSenderRefused)
            else (Phase.DATA if isinstance(error, smtplib.SMTPDataError) else Phase.UNKNOWN)
        )
        return classify(reply_status(error.smtp_code, error.smtp_error), phase)
    try:
        from anymail.exceptions import AnymailRecipientsRefused
    except ImportError:  # pragma: no cover - anymail is installed
        return Refusal.TRANSIENT
    return Refusal.RECIPIENT if isinstance(error, AnymailRecipientsRefused) else Refusal.TRANSIENT
