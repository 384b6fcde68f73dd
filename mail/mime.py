"""A message's bytes and addresses as they go on the wire.

The bytes of our usual message shape are written directly: a text body and one HTML alternative.

Django's `message().as_bytes()` builds a tree of email objects and walks it with Python's
generator; for a 40 kB digest that is about 1.3 ms, more than building the digest itself. The
message written here is the same MIME structure with the same headers (a multipart/alternative
of a 7bit/8bit UTF-8 text part and HTML part), so `email.message_from_bytes` reads both the same
way (tests compare them). Anything else returns None and takes Django's way: attachments, several
alternatives, a line longer than SMTP allows (which needs quoted-printable), a header with a
line break (which Django refuses), an address Django cannot write.
"""

import secrets
from email.header import Header
from email.utils import parseaddr
from functools import lru_cache

from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.message import sanitize_address

from mail.smtp_client import BARE_ADDRESS, UnsendableAddress

ADDRESS_HEADERS = {"from", "to", "cc", "reply-to"}
FOLD_AT = 78
LONGEST_LINE = 998  # RFC 5322: octets before CRLF


def fold(name: str, value: str) -> str | None:
    """`Name: value` folded at spaces to FOLD_AT columns where it can be; None if a line stays too long."""
    lines, line = [], f"{name}:"
    for word in value.split(" "):
        if word and len(line) + 1 + len(word) > FOLD_AT and line != f"{name}:":
            lines.append(line)
            line = ""
        line += f" {word}"
    lines.append(line)
    return None if any(len(line) > LONGEST_LINE for line in lines) else "\r\n".join(lines)


def sanitized_address(address: str, encoding: str = "utf-8") -> str:
    """Django's `sanitize_address`, whose header parser is slow, skipped for a bare address and
    cached for named ones (the From address of every message)."""
    if BARE_ADDRESS.fullmatch(address):  # sanitize_address returns those unchanged
        return address
    return _sanitized_named_address(address, encoding)


@lru_cache(maxsize=64)
def _sanitized_named_address(address: str, encoding: str) -> str:
    return sanitize_address(address, encoding)


def message_bytes(message: EmailMessage) -> bytes:
    """What goes on the wire: the message's own `message_bytes()` when it has one (ours are
    written directly, `alternative_bytes` below), else Django's `message().as_bytes()`."""
    write = getattr(message, "message_bytes", None)
    return write() if write is not None else message.message().as_bytes(linesep="\r\n")


def envelope_address(address: str, encoding: str = "utf-8") -> str:
    """The address as MAIL FROM and RCPT TO write it; UnsendableAddress for a local part that is not
    ASCII (Django would write it as an RFC 2047 encoded word: another, invalid address)."""
    if not address.isascii() and not parseaddr(address)[1].rpartition("@")[0].isascii():
        raise UnsendableAddress(
            f"{address!r}: a local part that is not ASCII needs SMTPUTF8, which Paperboy does not use"
        )
    return sanitized_address(address, encoding)


def _header(name: str, value: str) -> str | None:
    if "\n" in value or "\r" in value:
        return None
    if not value.isascii():
        return f"{name}: " + Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return fold(name, value)


def _addresses(name: str, addresses: list[str]) -> str | None:
    try:
        value = ", ".join(sanitized_address(address) for address in addresses)
    except ValueError:
        return None
    return _header(name, value) if value.isascii() else None


def _body(text: str) -> tuple[bytes, str] | None:
    """The part's bytes with CRLF line ends and its transfer encoding, or None if a line is too long."""
    if "\r" in text:  # rare in a rendered template: a scan is cheaper than two copies
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.encode("utf-8").split(b"\n")
    if max(map(len, lines)) > LONGEST_LINE:
        return None
    data = b"\r\n".join(lines)
    return data, "7bit" if data.isascii() else "8bit"


def alternative_bytes(message: EmailMultiAlternatives) -> bytes | None:
    """The message as the SMTP and `.eml` backends send it, or None when it is not of our usual shape."""
    if (
        message.attachments
        or len(message.alternatives) != 1
        or message.alternatives[0][1] != "text/html"
        or not isinstance(message.alternatives[0][0], str)
        or message.content_subtype != "plain"
        or message.mixed_subtype != "mixed"
        or message.cc
        or message.bcc
        or message.encoding not in (None, "utf-8")
    ):
        return None
    text, html = _body(str(message.body)), _body(message.alternatives[0][0])
    if text is None or html is None:
        return None
    boundary = f"==============={secrets.token_hex(10)}=="
    if boundary.encode() in text[0] or boundary.encode() in html[0]:
        return None
    extra = {name.lower() for name in message.extra_headers}
    if extra & ADDRESS_HEADERS or not {"date", "message-id"} <= extra:
        return None
    lines = [
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"',
        "MIME-Version: 1.0",
        _header("Subject", str(message.subject)),
        _addresses("From", [message.from_email]),
        _addresses("To", message.to),
    ]
    if message.reply_to:
        lines.append(_addresses("Reply-To", message.reply_to))
    lines += [_header(name, str(value)) for name, value in message.extra_headers.items()]
    headers = [line for line in lines if line is not None]
    if len(headers) < len(lines):
        return None
    out = ["\r\n".join(headers).encode("ascii"), b"\r\n\r\n"]
    for subtype, (data, encoding) in (("plain", text), ("html", html)):
        out += [
            f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\nMIME-Version: 1.0\r\n'
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n".encode("ascii"),
            data,
            b"\r\n",
        ]
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)
