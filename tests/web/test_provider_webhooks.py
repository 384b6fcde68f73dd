"""Provider webhooks (anymail): a stranger's POST never bounces or unsubscribes anyone.

Without ANYMAIL_WEBHOOK_SECRET (the default, and docker-compose.yml's) the URLs answer 404; with
it, a wrong secret changes nothing and the right one works. `check --deploy` refuses a provider
backend without a secret.
"""

import base64
import json
import os
import secrets
import subprocess
import sys

import pytest
from django.core.checks import run_checks
from django.test import Client

import web.webhooks
from subscribers.models import Subscriber
from tests.support import ROOT

pytestmark = pytest.mark.django_db

Status = Subscriber.Status
SECRET = "hooks:2b7e151628aed2a6abf7158809cf4f3c"


@pytest.fixture
def victims():
    return (
        Subscriber.objects.create(email="victim@example.org", status=Status.ACTIVE),
        Subscriber.objects.create(email="other-victim@example.org", status=Status.ACTIVE),
    )


@pytest.fixture
def default_deployment(settings):
    """As settings.py leaves it when ANYMAIL_WEBHOOK_SECRET is not in the environment."""
    settings.ANYMAIL = {}
    for name in ("ANYMAIL_WEBHOOK_SECRET", "ANYMAIL_WEBHOOK_AUTHORIZATION"):
        if hasattr(settings, name):
            delattr(settings, name)


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def spam_complaint(email: str) -> dict:
    return {
        "RecordType": "SpamComplaint",
        "Type": "SpamComplaint",
        "TypeCode": 100001,
        "ID": 42,
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "Email": email,
        "From": "digest@example.org",
        "BouncedAt": "2026-11-26T08:00:00Z",
        "Subject": "8 new papers",
        "Tag": "digest",
    }


def sendgrid_bounce(email: str, n: int) -> list[dict]:
    return [
        {
            "email": email,
            "event": "bounce",
            "type": "bounce",
            "status": "5.1.1",
            "reason": "550 5.1.1 The email account that you tried to reach does not exist",
            "timestamp": 1795680000 + n,
            "sg_event_id": f"forged-{n}",
            "sg_message_id": f"forged.{n}",
        }
    ]


def attack(client: Client, auth: str | None = None) -> list[int]:
    """What an outsider sends: one Postmark complaint and three SendGrid hard bounces."""
    extra = {"HTTP_AUTHORIZATION": auth} if auth else {}
    codes = [
        client.post(
            "/anymail/postmark/tracking/",
            json.dumps(spam_complaint("victim@example.org")),
            content_type="application/json",
            **extra,
        ).status_code
    ]
    for n in range(3):
        codes.append(
            client.post(
                "/anymail/sendgrid/tracking/",
                json.dumps(sendgrid_bounce("other-victim@example.org", n)),
                content_type="application/json",
                **extra,
            ).status_code
        )
    return codes


def unchanged(*subscribers: Subscriber) -> bool:
    return all(
        (s.status, s.bounce_count) == (Status.ACTIVE, 0)
        for s in Subscriber.objects.filter(pk__in=[s.pk for s in subscribers])
    )


def test_anonymous_webhook_posts_against_a_default_deployment_change_nothing(victims, default_deployment):
    codes = attack(Client(raise_request_exception=False))

    assert codes == [404, 404, 404, 404]
    assert unchanged(*victims)


def test_every_anymail_url_is_404_without_a_secret(default_deployment):
    from anymail.urls import urlpatterns

    client = Client(raise_request_exception=False)
    for pattern in urlpatterns:
        path = "/anymail/" + str(pattern.pattern).strip("^$").replace("(_mime)?", "")
        assert client.post(path, "{}", content_type="application/json").status_code == 404, path
        assert client.head(path).status_code == 404, path


def test_with_a_secret_a_wrong_or_missing_secret_changes_nothing(victims, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    client = Client(raise_request_exception=False)

    for auth in (None, basic("hooks:wrong"), basic(SECRET + "x"), basic(SECRET[:-1]), "Bearer " + SECRET, "Basic %%%"):
        assert set(attack(client, auth)) == {401}, auth
    assert unchanged(*victims)
    challenge = client.post("/anymail/postmark/tracking/", "{}", content_type="application/json")
    assert challenge["WWW-Authenticate"].startswith("Basic ")


def test_with_a_secret_the_right_one_works(victims, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}

    assert attack(Client(), basic(SECRET)) == [200, 200, 200, 200]

    complained, bounced = (Subscriber.objects.get(pk=s.pk) for s in victims)
    assert complained.status == Status.UNSUBSCRIBED
    assert (bounced.status, bounced.bounce_count) == (Status.BOUNCED, 3)


def test_a_secret_given_as_anymail_webhook_secret_alone_also_opens_them(victims, settings):
    settings.ANYMAIL = {}
    settings.ANYMAIL_WEBHOOK_SECRET = SECRET
    assert attack(Client(), basic(SECRET))[0] == 200


def test_the_secret_is_compared_in_constant_time_here_and_by_anymail(victims, settings, monkeypatch):
    """Held here so that neither a change of ours nor an anymail upgrade can quietly drop it
    (anymail's CVE-2018-6596)."""
    import anymail.webhooks.base
    from django.utils.crypto import constant_time_compare

    compared = {"ours": [], "anymail": []}

    def spy(who):
        def compare(given, expected):
            compared[who].append((given, expected))
            return constant_time_compare(given, expected)

        return compare

    monkeypatch.setattr(web.webhooks, "constant_time_compare", spy("ours"))
    monkeypatch.setattr(anymail.webhooks.base, "constant_time_compare", spy("anymail"))
    settings.ANYMAIL = {"WEBHOOK_SECRET": ["hooks:old-secret", SECRET]}  # two while rotating

    attack(Client(raise_request_exception=False), basic("hooks:guess"))
    assert ("hooks:guess", SECRET) in compared["ours"] and ("hooks:guess", "hooks:old-secret") in compared["ours"]
    assert compared["anymail"] == [], "a wrong secret never reaches anymail"
    assert unchanged(*victims)

    attack(Client(), basic(SECRET))
    assert (SECRET, SECRET) in compared["anymail"]


# --- check --deploy ---------------------------------------------------------------------------


def deploy_errors() -> list[str]:
    return [message.id for message in run_checks(include_deployment_checks=True) if message.is_serious()]


def test_check_deploy_refuses_a_provider_backend_without_a_webhook_secret(settings, default_deployment):
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    assert "paperboy.E001" in deploy_errors()

    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    assert "paperboy.E001" not in deploy_errors()


def test_check_deploy_does_not_ask_for_a_secret_when_mail_goes_by_smtp(settings, default_deployment):
    settings.EMAIL_BACKEND = "mail.smtp_client.EmailBackend"
    assert "paperboy.E001" not in deploy_errors()


def test_manage_py_check_deploy_fails_for_an_anymail_url_without_a_secret():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ANYMAIL_"))}
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "paperboy.example.org",
            "SITE_URL": "https://paperboy.example.org",
            "EMAIL_URL": "anymail://postmark",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "paperboy.E001" in result.stderr and "ANYMAIL_WEBHOOK_SECRET" in result.stderr


def test_compose_and_env_example_show_how_to_set_the_secret():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "ANYMAIL_WEBHOOK_SECRET" in compose["x-app"]["environment"]
    assert "ANYMAIL_WEBHOOK_SECRET=" in (ROOT / ".env.example").read_text()
