"""`make run`'s start (bin/run-dev), run for real in a temporary var/ folder: a quiet start whose
last lines say where the site, the admin login and the outbox are, with the feeds polled once."""

import re
from io import StringIO

import pytest
import requests
from django.core.management import call_command

from tests.support.servers import free_port
from tests.web.run_dev import make_run


@pytest.fixture
def started(tmp_path):
    """`make run` offline (nobody listens where its one feed is); yields (lines, port, that port, var)."""
    nobody = free_port()
    with make_run(tmp_path / "var", [f"http://127.0.0.1:{nobody}/rss/cs.LG"]) as running:
        yield running.lines, running.port, nobody, running.var


def test_the_start_is_quiet_and_its_last_lines_say_where_everything_is(started):
    lines, port, nobody, var = started
    site = f"http://127.0.0.1:{port}/"
    assert (
        lines[0] == f"Starting Paperboy: database, seed papers, then web, worker and beat (their output: {var}/log/)."
    )
    assert lines[1] == (
        f"Offline: could not reach 127.0.0.1:{nobody}; the digests use the seed papers until a poll succeeds."
    )
    assert lines[2] == ""
    assert lines[3] == "Paperboy is running."
    assert lines[4] == f"  Site:    {site}"
    assert re.fullmatch(rf"  Admin:   {site}admin/  login: admin / \S+  \(shown this once\)", lines[5])
    assert lines[6].startswith(f"  Outbox:  {var}/outbox/  ")
    assert lines[7] == f"  Logs:    {var}/log/  (web, worker, beat)"
    assert lines[8] == "Ctrl-C stops web, worker and beat."
    assert len(lines) == 9  # no banner, no warning above them
    assert {"worker.log", "beat.log", "web.log", "setup.log"} <= {p.name for p in (var / "log").iterdir()}


def test_the_printed_admin_login_works_and_the_site_answers(started):
    lines, port, _, _ = started
    site = f"http://127.0.0.1:{port}"
    password = re.search(r"login: admin / (\S+)", "\n".join(lines)).group(1)
    assert requests.get(site + "/", timeout=10).status_code == 200
    with requests.Session() as browser:
        page = browser.get(site + "/admin/login/", timeout=10).text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        answer = browser.post(
            site + "/admin/login/?next=/admin/",
            data={"username": "admin", "password": password, "csrfmiddlewaretoken": token, "next": "/admin/"},
            headers={"Referer": site + "/admin/login/"},
            timeout=10,
        )
    assert answer.url == site + "/admin/"
    assert "Log out" in answer.text


@pytest.mark.django_db
def test_a_second_start_shows_no_password_and_says_how_to_reset_it(settings, tmp_path):
    settings.EMAIL_FILE_PATH = str(tmp_path / "outbox")

    def welcome() -> str:
        out = StringIO()
        call_command("welcome", address="127.0.0.1:8000", logs=str(tmp_path / "log"), stdout=out)
        return out.getvalue()

    first, second = welcome(), welcome()
    assert re.search(r"login: admin / \S+  \(shown this once\)", first)
    assert "login: the admin you made (reset it with `.venv/bin/python manage.py changepassword admin`)" in second
    assert f"Outbox:  {tmp_path / 'outbox'}/" in second
