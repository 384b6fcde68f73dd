import dkim
import pytest
from django.core import mail

from config.env import SMTP_BACKEND
from digest.delivery.digest_email import build_digest_message
from tests.support.digest_samples import make_digest, make_dkim_key
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory):
    return make_dkim_key(tmp_path_factory.mktemp("dkim"))


@pytest.fixture
def dkim_settings(settings, key_pair):
    settings.DKIM_PRIVATE_KEY_PATH = str(key_pair[0])
    settings.DKIM_SELECTOR = "pb2026"
    settings.DKIM_DOMAIN = "paperboy.example.org"
    settings.DEFAULT_FROM_EMAIL = "Paperboy <digest@paperboy.example.org>"
    return settings


def verifies(raw: bytes, record: bytes) -> bool:
    def dns(name, timeout=5):
        assert name == b"pb2026._domainkey.paperboy.example.org."
        return record

    return dkim.verify(raw, dnsfunc=dns)


@pytest.fixture(params=["django", "direct"])
def digest_bytes(request):
    """The digest's bytes as Django's email package writes them, and as `message_bytes()` does."""

    def write() -> bytes:
        subscriber, candidates, delivery = make_digest()
        message = build_digest_message(subscriber, candidates, 3, delivery=delivery)
        if request.param == "django":
            return message.message().as_bytes(linesep="\r\n")
        return message.message_bytes()

    return write


def test_it_signs_the_digest_so_that_it_verifies_against_the_public_key(dkim_settings, key_pair, digest_bytes):
    raw = digest_bytes()

    assert raw.startswith(b"DKIM-Signature:") or b"\r\nDKIM-Signature:" in raw
    assert verifies(raw, key_pair[1])


def test_it_covers_the_one_click_unsubscribe_headers(dkim_settings, key_pair, digest_bytes):
    raw = digest_bytes()
    signature = dkim.DKIM(raw)
    signature.verify(dnsfunc=lambda name, timeout=5: key_pair[1])

    signed = {name.strip().lower() for name, _ in signature.signed_headers}
    assert {b"list-unsubscribe", b"list-unsubscribe-post", b"from", b"subject", b"date", b"message-id"} <= signed


def test_a_changed_unsubscribe_header_breaks_the_signature(dkim_settings, key_pair, digest_bytes):
    raw = digest_bytes()
    tampered = raw.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: nothing")

    assert tampered != raw
    assert not verifies(tampered, key_pair[1])


def test_the_eml_backend_writes_a_signed_message_that_verifies(dkim_settings, key_pair, tmp_path):
    dkim_settings.EMAIL_BACKEND = "mail.backends.EmlFolderBackend"
    dkim_settings.EMAIL_FILE_PATH = str(tmp_path)
    subscriber, candidates, delivery = make_digest()

    build_digest_message(subscriber, candidates, 3, delivery=delivery).send()

    [written] = list(tmp_path.glob("*.eml"))
    assert verifies(written.read_bytes(), key_pair[1])


def test_the_signature_survives_a_real_smtp_conversation(dkim_settings, key_pair):
    subscriber, candidates, delivery = make_digest()
    with SmtpSink() as sink:
        connection = mail.get_connection(SMTP_BACKEND, host=sink.host, port=sink.port, timeout=10)
        build_digest_message(subscriber, candidates, 3, delivery=delivery, connection=connection).send()

        [received] = sink.received

    assert verifies(received.data, key_pair[1])


def test_it_does_not_sign_without_a_key(settings):
    settings.DKIM_PRIVATE_KEY_PATH = ""
    subscriber, candidates, delivery = make_digest()

    build_digest_message(subscriber, candidates, 3, delivery=delivery).send()

    assert "DKIM-Signature" not in mail.outbox[0].message()
    assert b"DKIM-Signature" not in mail.outbox[0].message_bytes()
