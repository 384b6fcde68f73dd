"""Security: every silenced lint finding says why, the admin login is rate-limited, and signup
pages do not tell a known address from a new one, by their answer or by their time.

(ruff's S rules, bandit's checks, run in `make lint`; `manage.py check --deploy` is
tests/web/test_deploy_check.py; tokens are tests/subscribers/test_tokens.py.)
"""

import re
import statistics
import sys
import time
import unicodedata
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from subscribers.models import Subscriber
from tests.support import ROOT
from tests.support.signup import form, without_csrf
from web.admin_login import WINDOW_SECONDS, lockout_name

pytestmark = pytest.mark.django_db

APP_PACKAGES = ("config", "mail", "web", "subscribers", "digest")
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()


# --- silenced lint findings -----------------------------------------------------------------

NOQA = re.compile(r"# noqa: ([A-Z]+[0-9]+(?:, [A-Z]+[0-9]+)*)( - \S.*)?$")


def app_source_lines() -> dict[Path, list[str]]:
    return {path: path.read_text().splitlines() for package in APP_PACKAGES for path in ROOT.glob(f"{package}/**/*.py")}


def unexplained_noqa(lines: list[str]) -> list[str]:
    """Each `# noqa` names its rules and says why: after " - " on its line, or in a comment just
    above it (one comment may serve a run of lines silencing the same rules)."""
    found = []
    for number, line in enumerate(lines):
        if "# noqa" not in line:
            continue
        match = NOQA.search(line)
        if not match:
            found.append(f"{number + 1}: no rule named")
            continue
        if match.group(2):
            continue
        above = number - 1
        while above >= 0 and lines[above].rstrip().endswith(f"# noqa: {match.group(1)}"):
            above -= 1
        if above < 0 or not lines[above].strip().startswith("# "):
            found.append(f"{number + 1}: no reason given")
    return found


def test_every_noqa_in_the_app_names_its_rules_and_says_why():
    found = {str(path): unexplained_noqa(lines) for path, lines in app_source_lines().items()}
    assert {path: problems for path, problems in found.items() if problems} == {}
    assert len(found) > 50  # the walk did reach the app's modules


def test_a_bare_or_unexplained_noqa_is_found():
    assert unexplained_noqa(["x = eval(text)  # noqa"]) == ["1: no rule named"]
    assert unexplained_noqa(["", "x = eval(text)  # noqa: S307"]) == ["2: no reason given"]
    assert unexplained_noqa(["x = 1", "y = eval(text)  # noqa: S307"]) == ["2: no reason given"]
    assert unexplained_noqa(["x = eval(text)  # noqa: S307 - the text is ours"]) == []
    assert (
        unexplained_noqa(["# S307: the text is ours", "x = eval(a)  # noqa: S307", "y = eval(b)  # noqa: S307"]) == []
    )


# --- admin login ----------------------------------------------------------------------------


@pytest.fixture
def staff():
    return User.objects.create_user("operator", "op@example.org", PASSWORD, is_staff=True, is_superuser=True)


def log_in(client: Client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post("/admin/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_the_admin_login_answers_429_after_too_many_failures_from_one_ip(client, staff, settings):
    settings.ADMIN_LOGIN_FAILURES = 3
    codes = [log_in(client, "operator", f"guess {n}").status_code for n in range(3)]
    locked = log_in(client, "operator", PASSWORD)
    assert codes == [200, 200, 200]
    assert locked.status_code == 429 and int(locked["Retry-After"]) == WINDOW_SECONDS
    assert "_auth_user_id" not in client.session  # even the right password is refused while locked


def test_guessing_one_username_from_many_ips_is_locked_too(client, staff, settings):
    settings.ADMIN_LOGIN_FAILURES = 3
    for n in range(3):
        log_in(client, "Operator ", "wrong", ip=f"10.0.1.{n}")
    assert log_in(client, "operator", PASSWORD, ip="10.0.2.1").status_code == 429


def test_other_ips_and_usernames_are_not_locked_out_and_success_does_not_count(client, staff, settings):
    settings.ADMIN_LOGIN_FAILURES = 2
    for _ in range(2):
        log_in(client, "someone-else", "wrong", ip="10.0.0.9")
    assert log_in(Client(), "someone-else", "wrong", ip="10.0.0.9").status_code == 429
    for _ in range(4):
        assert log_in(Client(), "operator", PASSWORD, ip="10.0.0.10").status_code == 302


def test_a_locked_username_cannot_be_bypassed_by_a_name_django_normalises_to_it(client, settings):
    """Django's login form NFKC-normalises the username: full-width letters log into `admin`."""
    User.objects.create_user("admin", "admin@example.org", PASSWORD, is_staff=True, is_superuser=True)
    settings.ADMIN_LOGIN_FAILURES = 10
    for n in range(10):
        log_in(Client(), "admin", f"guess {n}", ip=f"10.0.3.{n}")

    fresh_ip = "10.0.4.1"
    for disguise in ("ａｄｍｉｎ", "ＡＤＭＩＮ", " admin\t", "Admin", "ᵃdmin"):
        response = log_in(Client(), disguise, PASSWORD, ip=fresh_ip)
        assert response.status_code == 429, disguise
    assert log_in(Client(), "admin", PASSWORD, ip=fresh_ip).status_code == 429


def test_the_full_width_name_really_logs_into_the_account_when_not_locked(client):
    """What makes the bypass real: the login form normalises the name before the backend looks it up."""
    User.objects.create_user("admin", "admin@example.org", PASSWORD, is_staff=True, is_superuser=True)
    assert log_in(client, "ａｄｍｉｎ", PASSWORD).status_code == 302
    assert client.session["_auth_user_id"]


def test_failures_under_normalised_names_count_towards_the_same_lockout(client, staff, settings):
    settings.ADMIN_LOGIN_FAILURES = 3
    for n, disguise in enumerate(("ｏｐｅｒａｔｏｒ", "OPERATOR", "\u1d3cperator")):
        log_in(Client(), disguise, "wrong", ip=f"10.0.5.{n}")
    assert log_in(Client(), "operator", PASSWORD, ip="10.0.6.1").status_code == 429


def _compatibility_variants(letter: str) -> list[str]:
    return [chr(code) for code in range(sys.maxunicode + 1) if unicodedata.normalize("NFKC", chr(code)) == letter]


VARIANTS = {letter: _compatibility_variants(letter) for letter in "admin"}


@given(
    st.tuples(*(st.sampled_from(VARIANTS[letter]) for letter in "admin")), st.sampled_from(["", " ", "\t", "\u3000"])
)
def test_every_spelling_the_login_form_turns_into_admin_shares_admins_lockout_key(letters, padding):
    from django.contrib.auth.forms import UsernameField

    spelling = padding + "".join(letters) + padding
    assert UsernameField().clean(spelling) == "admin"  # the name the backend will look up
    assert lockout_name(spelling) == lockout_name("admin")


def test_the_admin_lockout_ends_once_the_failures_are_a_window_old(client, staff, settings):
    import time_machine

    settings.ADMIN_LOGIN_FAILURES = 1
    with time_machine.travel("2026-11-26 08:00:00Z", tick=False) as clock:
        log_in(client, "operator", "wrong")
        assert log_in(client, "operator", PASSWORD).status_code == 429
        clock.shift(WINDOW_SECONDS - 1)
        assert log_in(client, "operator", PASSWORD).status_code == 429
        clock.shift(2)  # the failure is now more than a window old
        assert log_in(client, "operator", PASSWORD).status_code == 302


def test_guesses_spent_either_side_of_a_window_boundary_stay_locked_out(client, staff, settings):
    """The attack on a fixed window: spend the limit a second before the boundary, then guess
    again a second after it. The lockout holds across the boundary."""
    import time_machine

    settings.ADMIN_LOGIN_FAILURES = 3
    with time_machine.travel("2026-11-26 08:14:59Z", tick=False) as clock:
        for n in range(3):
            log_in(Client(), "operator", "wrong", ip=f"10.0.7.{n}")
        clock.shift(2)
        assert log_in(Client(), "operator", PASSWORD, ip="10.0.7.9").status_code == 429
        assert log_in(Client(), "operator", "wrong", ip="10.0.7.5").status_code == 429


def test_the_admin_login_page_itself_still_shows(client, staff, settings):
    settings.ADMIN_LOGIN_FAILURES = 1
    log_in(client, "operator", "wrong")
    assert client.get("/admin/login/").status_code == 200


def test_admin_login_failures_are_shared_through_redis(client, staff, settings, redis_url):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    settings.ADMIN_LOGIN_FAILURES = 2
    log_in(Client(), "operator", "wrong")
    log_in(Client(), "operator", "wrong")
    assert log_in(Client(), "operator", PASSWORD).status_code == 429


# --- no enumeration -------------------------------------------------------------------------


def timed_ms(client: Client, path: str, data: dict) -> float:
    started = time.perf_counter()
    response = client.post(path, data)
    assert response.status_code == 302
    return (time.perf_counter() - started) * 1000


def alike(first: list[float], second: list[float]) -> bool:
    slow, fast = sorted([statistics.median(first), statistics.median(second)], reverse=True)
    return slow < fast * 1.5 + 5


@pytest.fixture
def queued_for_real(settings, redis_url, broker_and_cache_on):
    """As in production: the request only queues its work to a Redis broker (no eager tasks)."""
    broker_and_cache_on(redis_url)
    settings.SIGNUP_RATE_PER_IP = settings.SIGNUP_RATE_PER_ADDRESS = 10**6
    Subscriber.objects.create(email="known@example.org", status=Subscriber.Status.ACTIVE)


def test_signup_with_a_known_address_answers_like_a_new_one_and_in_about_the_same_time(client, queued_for_real):
    new = client.post("/", form(email="fresh@example.org"), follow=True)
    known = client.post("/", form(email="known@example.org"), follow=True)
    assert new.redirect_chain == known.redirect_chain
    assert without_csrf(new.content.decode()) == without_csrf(known.content.decode())

    new_ms, known_ms = [], []
    for n in range(21):  # interleaved, so that a busy moment of the machine hits both alike
        new_ms.append(timed_ms(client, "/", form(email=f"reader{n}@example.org")))
        known_ms.append(timed_ms(client, "/", form(email="known@example.org")))
    assert alike(new_ms, known_ms), (statistics.median(new_ms), statistics.median(known_ms))


def test_the_manage_link_form_answers_alike_for_known_and_unknown_addresses_in_about_the_same_time(
    client, queued_for_real
):
    known = client.post("/manage/", {"email": "known@example.org"}, follow=True)
    unknown = client.post("/manage/", {"email": "nobody@example.org"}, follow=True)
    assert without_csrf(known.content.decode()) == without_csrf(unknown.content.decode())

    known_ms, unknown_ms = [], []
    for n in range(21):
        known_ms.append(timed_ms(client, "/manage/", {"email": "known@example.org"}))
        unknown_ms.append(timed_ms(client, "/manage/", {"email": f"nobody{n}@example.org"}))
    assert alike(known_ms, unknown_ms), (statistics.median(known_ms), statistics.median(unknown_ms))


def test_no_page_lists_or_counts_subscribers_for_anonymous_visitors(client):
    Subscriber.objects.create(email="private@example.org", status=Subscriber.Status.ACTIVE)
    for path in [
        "/",
        "/manage/",
        "/archive/",
        "/healthz",
        "/check-your-inbox/",
        "/admin/",
        "/admin/subscribers/subscriber/",
    ]:
        response = client.get(path, follow=True)
        assert b"private@example.org" not in response.content, path
        assert b"private%40example.org" not in response.content, path
