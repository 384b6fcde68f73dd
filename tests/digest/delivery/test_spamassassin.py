"""A typical digest must score at most 0 with SpamAssassin's local rules (Bayes off)."""

import re
import shutil
import subprocess

import pytest

from digest.delivery.digest_email import build_digest_message
from tests.support import IN_CI
from tests.support.digest_samples import make_digest, make_dkim_key

pytestmark = pytest.mark.django_db

SPAMASSASSIN = shutil.which("spamassassin") or "/usr/bin/spamassassin"


def spamassassin_report(raw: bytes) -> tuple[float, str]:
    """The score and the rule report of `spamassassin -L -t` on these bytes."""
    try:
        result = subprocess.run(
            [SPAMASSASSIN, "-L", "-t", "--cf=use_bayes 0", "--cf=use_auto_whitelist 0"],
            input=raw,
            capture_output=True,
            timeout=120,
            check=False,
        )
    except FileNotFoundError:
        if IN_CI:
            pytest.fail("spamassassin is not installed (bin/install-system-packages installs it)")
        pytest.skip("spamassassin is not installed")
    output = result.stdout.decode(errors="replace")
    match = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", output, re.MULTILINE)
    assert match, output[:2000] + result.stderr.decode(errors="replace")
    report = output[output.find("Content analysis details") :]
    return float(match.group(1)), report


@pytest.fixture
def production_like(settings):
    settings.SITE_URL = "https://paperboy.example.org"
    settings.DEFAULT_FROM_EMAIL = "Paperboy <digest@paperboy.example.org>"


def typical_digest_bytes(more: int = 4) -> bytes:
    subscriber, candidates, delivery = make_digest(count=8, more=more)
    message = build_digest_message(subscriber, candidates, more, delivery=delivery)
    return message.message().as_bytes(linesep="\r\n")


def test_a_typical_digest_scores_at_most_zero(production_like):
    score, report = spamassassin_report(typical_digest_bytes())

    assert score <= 0, report


def test_a_short_digest_without_more_link_scores_at_most_zero(production_like):
    subscriber, candidates, delivery = make_digest(count=1, more=0)
    raw = build_digest_message(subscriber, candidates, 0, delivery=delivery).message().as_bytes(linesep="\r\n")

    score, report = spamassassin_report(raw)

    assert score <= 0, report


def test_a_dkim_signed_digest_scores_at_most_zero(production_like, settings, tmp_path):
    key, _ = make_dkim_key(tmp_path)
    settings.DKIM_PRIVATE_KEY_PATH = str(key)
    settings.DKIM_SELECTOR = "pb2026"
    settings.DKIM_DOMAIN = "paperboy.example.org"
    raw = typical_digest_bytes()
    assert b"DKIM-Signature:" in raw

    score, report = spamassassin_report(raw)

    assert score <= 0, report
