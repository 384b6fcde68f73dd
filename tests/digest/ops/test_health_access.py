"""/healthz tells a stranger status words only; details are for operators and token holders."""

import json
import shutil

import pytest
from django.contrib.auth.models import User
from django.test import Client

import digest.ops.access
from digest.ops.health import for_anonymous

pytestmark = pytest.mark.django_db

TOKEN = "3f0c9a1e-healthz-token"


@pytest.fixture
def broker_folder(settings, tmp_path):
    folder = tmp_path / "private" / "paperboy" / "broker" / "queue"
    folder.mkdir(parents=True)
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    settings.HEALTHZ_TOKEN = TOKEN
    return folder


def test_a_stranger_gets_status_words_and_nothing_else(broker_folder):
    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert str(broker_folder) not in response.content.decode() and "/private/" not in response.content.decode()


def test_a_stranger_sees_down_but_not_why(broker_folder):
    shutil.rmtree(broker_folder)

    response = Client().get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "down", "database": "ok", "broker": "down"}
    assert "Error" not in response.content.decode() and "private" not in response.content.decode()


def test_a_stranger_learns_nothing_from_a_refused_redis(settings, broker_folder):
    settings.REDIS_URL = "redis://user:hunter2@127.0.0.1:1/0"
    body = Client().get("/healthz").content.decode()
    assert json.loads(body) == {"status": "down", "database": "ok", "broker": "down"}
    assert "ConnectionError" not in body and "127.0.0.1" not in body and "vendor" not in body


def test_the_right_bearer_token_shows_the_details(broker_folder):
    body = Client().get("/healthz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json()
    assert body["broker"]["folder"] == str(broker_folder)
    assert "vendor" in body["database"] and "last_ingest" in body


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, "Bearer ", ""])
def test_a_wrong_token_gets_what_a_stranger_gets(broker_folder, header):
    body = Client().get("/healthz", HTTP_AUTHORIZATION=header).json()
    assert body == {"status": "ok", "database": "ok", "broker": "ok"}


def test_without_a_configured_token_no_bearer_header_shows_details(settings, broker_folder):
    settings.HEALTHZ_TOKEN = ""
    assert Client().get("/healthz", HTTP_AUTHORIZATION="Bearer ").json() == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
    }


def test_a_logged_in_operator_sees_the_details_and_a_logged_in_non_operator_does_not(broker_folder):
    operator, client = User.objects.create_user("ops", is_staff=True), Client()
    client.force_login(operator)
    assert client.get("/healthz").json()["broker"]["folder"] == str(broker_folder)

    someone = Client()
    someone.force_login(User.objects.create_user("someone"))
    assert "folder" not in json.dumps(someone.get("/healthz").json())


def test_the_token_is_compared_in_constant_time(broker_folder, monkeypatch):
    from django.utils.crypto import constant_time_compare

    compared = []

    def spy(given, expected):
        compared.append((given, expected))
        return constant_time_compare(given, expected)

    monkeypatch.setattr(digest.ops.access, "constant_time_compare", spy)
    Client().get("/healthz", HTTP_AUTHORIZATION="Bearer guess")
    assert compared == [("guess", TOKEN)]


def test_the_filter_keeps_any_component_status_word_and_drops_everything_else():
    report = {
        "status": "degraded",
        "database": {"ok": True, "vendor": "postgresql", "version": "16.4", "ms": 0.8},
        "broker": {"ok": False, "error": "ConnectionError: /var/run/redis.sock", "ms": 2001.0},
        "sending": {"ok": True, "status": "degraded", "refused": 12, "last_refusal": "550 5.7.1 spam"},
        "last_ingest": "2026-11-26T07:00:12+00:00",
        "last_dispatch": None,
    }
    assert for_anonymous(report) == {"status": "degraded", "database": "ok", "broker": "down", "sending": "degraded"}
