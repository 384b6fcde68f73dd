import os
import subprocess
import sys

import pytest
import yaml
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from config.celery import app
from config.env import EML_BACKEND, SMTP_BACKEND, env_bool, env_int, parse_email_url
from tests.support import ROOT


def test_env_bool_rejects_a_malformed_value(monkeypatch):
    monkeypatch.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG"):
        env_bool("SOME_FLAG", False)


def test_env_int_reads_numbers_and_rejects_words(monkeypatch):
    monkeypatch.setenv("SOME_NUMBER", "42")
    assert env_int("SOME_NUMBER", 1) == 42
    monkeypatch.setenv("SOME_NUMBER", "forty")
    with pytest.raises(ImproperlyConfigured):
        env_int("SOME_NUMBER", 1)


def test_smtp_url_with_starttls_becomes_smtp_settings():
    conf = parse_email_url("smtp://me%40x.org:s3cr%2Ft@mail.example.org:587?tls=1", ROOT)
    assert conf["EMAIL_BACKEND"] == SMTP_BACKEND
    assert conf["EMAIL_HOST"] == "mail.example.org"
    assert conf["EMAIL_PORT"] == 587
    assert conf["EMAIL_HOST_USER"] == "me@x.org"
    assert conf["EMAIL_HOST_PASSWORD"] == "s3cr/t"
    assert conf["EMAIL_USE_TLS"] is True and conf["EMAIL_USE_SSL"] is False


def test_file_url_writes_eml_files_under_the_folder(tmp_path):
    conf = parse_email_url(f"file://{tmp_path}/out", ROOT)
    assert conf == {"EMAIL_BACKEND": EML_BACKEND, "EMAIL_FILE_PATH": str(tmp_path / "out")}
    assert parse_email_url("file://var/outbox", ROOT)["EMAIL_FILE_PATH"] == str(ROOT / "var/outbox")


def test_unknown_email_scheme_is_an_error():
    with pytest.raises(ImproperlyConfigured, match="scheme"):
        parse_email_url("pigeon://coop", ROOT)


def test_eml_backend_writes_one_file_per_message(tmp_path, settings):
    from django.core.mail import EmailMessage, get_connection

    conn = get_connection(EML_BACKEND, file_path=str(tmp_path))
    messages = [EmailMessage(f"Hello {i}", "body", "a@example.org", ["b@example.org"]) for i in range(3)]
    assert conn.send_messages(messages) == 3
    files = sorted(tmp_path.glob("*.eml"))
    assert len(files) == 3
    assert b"Subject: Hello" in files[0].read_bytes()


def _start_settings(env: dict, show: str = "DEBUG") -> subprocess.CompletedProcess:
    """Load the settings in a fresh process with `env`, printing the setting `show`."""
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; from django.conf import settings; django.setup(); print(settings.{show})",
        ],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
    )


def test_missing_secret_key_with_debug_off_is_a_clear_startup_error():
    result = _start_settings({"DEBUG": "0"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_production_settings_start_with_a_secret_key():
    result = _start_settings({"DEBUG": "0", "SECRET_KEY": "x" * 50})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_feed_max_entries_is_read_from_the_environment_and_defaults_above_every_capture():
    assert django_settings.FEED_MAX_ENTRIES == 5000  # the largest capture holds 1,314 entries
    result = _start_settings({"FEED_MAX_ENTRIES": "1500"}, show="FEED_MAX_ENTRIES")
    assert (result.returncode, result.stdout.strip()) == (0, "1500"), result.stderr


@pytest.mark.parametrize(
    "value, message",
    [("many", "FEED_MAX_ENTRIES must be a whole number"), ("0", "FEED_MAX_ENTRIES must be at least 1")],
)
def test_a_malformed_or_zero_feed_max_entries_is_a_clear_startup_error(value, message):
    result = _start_settings({"FEED_MAX_ENTRIES": value}, show="FEED_MAX_ENTRIES")
    assert result.returncode != 0
    assert message in result.stderr


def test_every_setting_read_from_the_environment_is_documented():
    import re

    read = set()
    for path in (ROOT / "config").glob("*.py"):
        read |= set(re.findall(r'env_(?:str|bool|int|float|list)\(\s*"([A-Z_]+)"', path.read_text()))
    example = (ROOT / ".env.example").read_text()
    documented = (ROOT / "docs" / "configuration.md").read_text()
    missing_example = sorted(name for name in read if f"\n{name}=" not in "\n" + example)
    missing_docs = sorted(name for name in read if f"`{name}`" not in documented)
    assert not missing_example, f"not in .env.example: {missing_example}"
    assert not missing_docs, f"not in docs/configuration.md: {missing_docs}"


def compose_default(value: str) -> str:
    """A compose value with its `${NAME:-default}` interpolation replaced by the default."""
    import re

    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_file_defines_the_production_services():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "mailpit"} <= set(services)
    assert "gunicorn" in services["web"]["command"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "config", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    assert services["beat"]["deploy"]["replicas"] == 1
    assert "replicas" not in services["worker"].get("deploy", {}), "workers must stay scalable"
    images = {services[name]["image"] for name in ("web", "worker", "beat")}
    assert images == {"paperboy:latest"}, "web, worker and beat share one image"
    for name in ("web", "worker", "beat"):
        env = {key: compose_default(value) for key, value in services[name]["environment"].items()}
        assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis://")
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in __import__("django.conf").conf.settings.MIDDLEWARE


def test_compose_gives_matching_and_sending_workers_of_their_own_that_scale():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    workers = {
        name: s for name, s in services.items() if s.get("command", [])[:4] == ["celery", "-A", "config", "worker"]
    }
    consumed = {}
    for name, service in workers.items():
        command = service["command"]
        consumed[command[command.index("-Q") + 1]] = name
        assert service["image"] == "paperboy:latest"
        assert "replicas" not in service.get("deploy", {}), f"{name} must stay scalable"
        assert "ports" not in service and "container_name" not in service, (
            f"--scale {name}=N needs no fixed port or name"
        )
    assert consumed == {"celery": "worker", "matching": "worker-matching", "sending": "worker-sending"}
    assert set(consumed) == set(django_settings.CELERY_TASK_QUEUES), "every queue has its worker"
    assert [name for name, s in services.items() if s.get("command", [])[3:4] == ["beat"]] == ["beat"]


def test_transaction_pooling_turns_server_side_cursors_off_and_refuses_async_commits():
    pooled = {"DATABASE_URL": "postgres://paperboy@pgbouncer:6432/paperboy", "DB_TRANSACTION_POOLING": "1"}
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; from django.conf import settings; django.setup(); "
            "print(settings.DATABASES['default']['DISABLE_SERVER_SIDE_CURSORS'])",
        ],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **pooled},
        capture_output=True,
        text=True,
    )
    assert shown.stdout.strip() == "True", shown.stderr
    refused = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **pooled, "SEND_ASYNC_COMMIT": "1"},
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "DB_TRANSACTION_POOLING" in refused.stderr


def test_celery_app_loads_config_from_django_settings():
    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_reject_on_worker_lost is True


def test_the_embedded_sqlite_database_runs_in_wal_mode_without_waiting_for_the_disk_on_commit(
    tmp_path, django_db_blocker
):
    import sqlite3

    from django.db.backends.sqlite3.base import DatabaseWrapper

    settings_dict = {**django_settings.DATABASES["default"], "NAME": str(tmp_path / "wal.sqlite3")}
    if settings_dict["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("the PostgreSQL pass has no SQLite settings")
    wrapper = DatabaseWrapper(settings_dict, alias="wal-check")
    with django_db_blocker.unblock(), wrapper.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 1  # NORMAL
    wrapper.close()
    assert sqlite3.connect(tmp_path / "wal.sqlite3").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
