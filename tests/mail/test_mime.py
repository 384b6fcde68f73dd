"""The directly written MIME bytes read back exactly as Django's own message does."""

from email import message_from_bytes, policy

import pytest
from django.core.mail import BadHeaderError
from django.core.mail.message import sanitize_address

from digest.delivery.digest_email import build_digest_message
from mail.dkim import SignedEmailMultiAlternatives
from mail.mime import FOLD_AT, alternative_bytes, sanitized_address
from subscribers.emails import confirmation_message
from tests.support.digest_samples import make_digest, make_subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = "https://paperboy.example.org"
    settings.DEFAULT_FROM_EMAIL = "Paperboy <digest@paperboy.example.org>"


def read(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


def assert_reads_the_same(message) -> bytes:
    direct = alternative_bytes(message)
    assert direct is not None
    ours, django = read(direct), read(message.message().as_bytes(linesep="\r\n"))
    # (Python's folding leaves a leading space on a value it moved to the next line.)
    assert [(name, str(value)) for name, value in ours.items() if name != "Content-Type"] == [
        (name, str(value).strip()) for name, value in django.items() if name != "Content-Type"
    ]
    assert ours.get_content_type() == django.get_content_type() == "multipart/alternative"
    for theirs, mine in zip(django.iter_parts(), ours.iter_parts(), strict=True):
        assert mine.get_content_type() == theirs.get_content_type()
        assert mine["Content-Transfer-Encoding"] == theirs["Content-Transfer-Encoding"]
        assert mine.get_content() == theirs.get_content()
    assert not ours.defects and all(not part.defects for part in ours.walk())
    return direct


def plain(subject="Hello", body="Plain words.\n", html="<p>Plain words.</p>\n", **kwargs):
    message = SignedEmailMultiAlternatives(
        subject=subject,
        body=body,
        from_email=kwargs.pop("from_email", "Paperboy <digest@paperboy.example.org>"),
        to=kwargs.pop("to", ["ada@example.org"]),
        headers={
            "Message-ID": "<1@paperboy.example.org>",
            "Date": "Thu, 26 Nov 2026 07:00:00 GMT",
            **kwargs.pop("headers", {}),
        },
        **kwargs,
    )
    message.attach_alternative(html, "text/html")
    return message


def test_a_digest_reads_the_same_as_djangos_message():
    subscriber, candidates, delivery = make_digest()
    raw = assert_reads_the_same(build_digest_message(subscriber, candidates, 3, delivery=delivery))

    assert b"Content-Transfer-Encoding: 8bit" in raw  # the sample papers' authors have accents
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_a_confirmation_email_reads_the_same():
    assert_reads_the_same(confirmation_message(make_subscriber("grace@example.org", status="pending")))


def test_non_ascii_subjects_and_names_are_encoded_words():
    message = plain(
        subject="3 new papers on Schrödinger bridges — and ∇ fields",
        from_email="Paperböy <digest@paperboy.example.org>",
    )
    raw = assert_reads_the_same(message)

    assert raw.isascii() or b"=?utf-8?" in raw.split(b"\r\n\r\n", 1)[0]
    assert raw.split(b"\r\n\r\n", 1)[0].isascii()
    assert str(read(raw)["Subject"]) == "3 new papers on Schrödinger bridges — and ∇ fields"


def test_a_non_ascii_mailbox_is_written_as_django_writes_it():
    assert_reads_the_same(plain(to=["ädä@example.org", "Grace Hopper <grace@exämple.org>"]))


def test_long_headers_are_folded_at_spaces():
    links = ", ".join(f"<https://paperboy.example.org/unsubscribe/{'x' * 60}{n}/>" for n in range(3))
    raw = assert_reads_the_same(plain(headers={"List-Unsubscribe": links}))

    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        words = line.split()
        words = words[1:] if words[0].endswith(b":") else words
        assert len(line) <= FOLD_AT or len(words) == 1, line  # only a single long word overflows
    assert str(read(raw)["List-Unsubscribe"]) == links


def test_line_endings_become_crlf_and_a_pure_ascii_part_is_7bit():
    raw = assert_reads_the_same(plain(body="one\r\ntwo\rthree\nfour\n"))

    assert b"one\r\ntwo\r\nthree\r\nfour\r\n" in raw
    assert b"Content-Transfer-Encoding: 7bit" in raw


def test_other_shapes_are_left_to_django():
    too_long = plain(html="<p>" + "x" * 1200 + "</p>")  # needs quoted-printable
    attached = plain()
    attached.attach("notes.txt", "notes", "text/plain")
    copied = plain(cc=["grace@example.org"])

    for message in (too_long, attached, copied):
        assert alternative_bytes(message) is None
    assert read(too_long.message_bytes()).get_body(("html",)).get_content() == "<p>" + "x" * 1200 + "</p>"


def test_a_header_with_a_line_break_is_refused_as_django_refuses_it():
    message = plain(subject="Hello\r\nBcc: everyone@example.org")

    assert alternative_bytes(message) is None
    with pytest.raises(BadHeaderError):
        message.message_bytes()


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.org",
        "a.b+digest@mail.example.co.uk",
        "Paperboy <digest@paperboy.example.org>",
        "Paperböy <digest@paperboy.example.org>",
        "ädä@example.org",
        "grace@exämple.org",
        '"a..b"@example.org',
    ],
)
def test_sanitized_address_is_djangos_sanitize_address(address):
    assert sanitized_address(address) == sanitize_address(address, "utf-8")
