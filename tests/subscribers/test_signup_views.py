import json
import re
import socket
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from config.celery import app
from digest.models import Paper
from subscribers.models import Subscriber, Topic
from subscribers.tokens import make_token
from tests.support.signup import form, without_csrf

pytestmark = pytest.mark.django_db

Status = Subscriber.Status
SCRIPT = '<script>alert("pwned")</script>'


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()


@pytest.fixture
def topic():
    return Topic.objects.create(
        slug="nerf", name="Neural fields", description="NeRFs, Gaussian splatting & friends", position=1
    )


def sign_up(client, committed, **overrides):
    with committed():
        return client.post("/", form(**overrides), REMOTE_ADDR=overrides.pop("ip", "127.0.0.1"))


def link_in(message, name: str) -> str:
    return re.search(rf"http://[^/]+(/{name}/[^/\s]+/)", message.body).group(1)


# --- The signup page -----------------------------------------------------------------------------


def test_the_signup_page_offers_topics_with_descriptions_and_this_weeks_trending_papers(client, topic):
    Paper.objects.create(guid="a", title="Old but loved", upvotes=90)
    Paper.objects.create(guid="b", title="Splat everything", upvotes=120, url="https://arxiv.org/abs/2611.00001")
    with time_machine.travel(timezone.now() - timedelta(days=9)):
        Paper.objects.create(guid="c", title="Last month's hit", upvotes=500)

    response = client.get("/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Neural fields" in html and "NeRFs, Gaussian splatting &amp; friends" in html
    assert html.index("Splat everything") < html.index("Old but loved")
    assert "Last month&#x27;s hit" not in html and "Last month's hit" not in html
    assert 'name="website"' in html, "the honeypot is rendered"
    assert "cs.LG" in html and "Machine Learning" in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "<script>" not in html and 'src="/static/js/preferences.js"' in html


def test_subscriber_pages_carry_the_security_headers(client, active):
    for url in ("/", manage_url(active), unsubscribe_url(active)):
        headers = client.get(url).headers
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin", "tokens in our URLs never leave the site"


def test_a_signup_creates_a_pending_subscriber_and_shows_check_your_inbox(client, committed, topic):
    response = sign_up(
        client, committed, topics=[str(topic.pk)], categories=["cs.CV", "cs.GR"], authors="Ben Mildenhall\n"
    )

    assert response.status_code == 302 and response.headers["Location"] == reverse("subscribers:check_inbox")
    subscriber = Subscriber.objects.get()
    assert (subscriber.status, subscriber.timezone, subscriber.categories) == (
        "pending",
        "Europe/Paris",
        ["cs.CV", "cs.GR"],
    )
    assert subscriber.authors == ["Ben Mildenhall"] and list(subscriber.topics.all()) == [topic]
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@example.org"]
    assert "Check your inbox" in client.get(response.headers["Location"]).content.decode()


def test_errors_show_next_to_their_field_and_everything_else_is_kept(client, committed):
    response = sign_up(client, committed, email="not-an-address", interests="long attention", max_papers="99")

    html = response.content.decode()
    assert response.status_code == 400
    email_field = html[html.index('id="field-email"') :][:900]
    assert "Please enter a valid email address" in email_field
    assert "less than or equal to 50" in html[html.index('id="field-max_papers"') :][:900]
    assert "long attention" in html and "&quot;neural field&quot;, NeRF, -medical" in html
    assert '<option value="Europe/Paris" selected>' in html
    assert not Subscriber.objects.exists() and not mail.outbox


def test_a_signup_without_any_interest_is_refused_politely(client, committed):
    response = sign_up(client, committed, keywords="")
    assert response.status_code == 400
    assert "Pick at least one topic" in response.content.decode()


def test_keywords_without_any_word_to_match_are_refused(client, committed):
    response = sign_up(client, committed, keywords='the, "", -')
    assert response.status_code == 400
    assert "We found no word to look for" in response.content.decode()


def test_the_signup_page_costs_two_queries(client, topic, django_assert_num_queries):
    with django_assert_num_queries(2):  # topics, trending papers
        assert client.get("/").status_code == 200


def test_one_click_unsubscribe_costs_three_queries(active, django_assert_num_queries):
    url = unsubscribe_url(active)
    with django_assert_num_queries(3):  # read the token's subscriber, update, reload
        response = Client().post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200


def test_unknown_categories_and_time_zones_are_refused(client, committed):
    response = sign_up(client, committed, categories=["cs.XX"], timezone="Mars/Olympus_Mons")
    html = response.content.decode()
    assert response.status_code == 400
    assert html.count("Select a valid choice") == 2
    assert not Subscriber.objects.exists()


def test_signing_up_with_a_known_address_looks_exactly_like_a_new_signup(client, committed):
    new = sign_up(client, committed, email="new@example.org")
    Subscriber.objects.create(email="known@example.org", status=Status.ACTIVE, keywords="mine")
    known = sign_up(client, committed, email="Known@Example.org")

    assert (new.status_code, new.headers["Location"]) == (known.status_code, known.headers["Location"])
    assert sorted(new.cookies) == sorted(known.cookies)
    first = without_csrf(client.get(new.headers["Location"]).content.decode())
    second = without_csrf(client.get(known.headers["Location"]).content.decode())
    assert first == second
    # ...yet the owner of the known address got their manage link, and nothing changed for them.
    assert [m.subject for m in mail.outbox] == ["Confirm your Paperboy subscription", "Your Paperboy subscription link"]
    assert Subscriber.objects.get(email="known@example.org").keywords == "mine"


def test_a_filled_honeypot_is_answered_like_a_signup_but_does_nothing(client, committed):
    response = sign_up(client, committed, website="http://spam.example")
    assert response.status_code == 302 and response.headers["Location"] == reverse("subscribers:check_inbox")
    assert not Subscriber.objects.exists() and not mail.outbox


def test_signup_needs_a_csrf_token(committed):
    strict = Client(enforce_csrf_checks=True)
    with committed():
        response = strict.post("/", form())
    assert response.status_code == 403
    assert not Subscriber.objects.exists()


# --- Rate limits ---------------------------------------------------------------------------------


def test_too_many_signups_from_one_ip_get_a_readable_429(client, committed, settings):
    settings.SIGNUP_RATE_PER_IP = 3
    codes = [sign_up(client, committed, email=f"person{i}@example.org").status_code for i in range(4)]

    assert codes == [302, 302, 302, 429]
    response = sign_up(client, committed, email="another@example.org")
    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()
    assert response.headers["Retry-After"] == "3600"
    assert Subscriber.objects.count() == 3
    assert sign_up(client, committed, email="elsewhere@example.org", ip="10.0.0.9").status_code == 302


def test_too_many_signups_for_one_address_get_a_429_whatever_the_ip(client, committed, settings):
    settings.SIGNUP_RATE_PER_ADDRESS = 2
    codes = [sign_up(client, committed, email="ADA@example.org", ip=f"10.0.0.{i}").status_code for i in range(3)]
    assert codes == [302, 302, 429]
    assert len(mail.outbox) == 1, "one confirmation per hour, however often the form is sent"


def test_the_rate_limit_window_resets_after_an_hour(client, committed, settings):
    settings.SIGNUP_RATE_PER_IP = 1
    with time_machine.travel("2026-11-26 09:10Z", tick=False):
        assert sign_up(client, committed, email="a@example.org").status_code == 302
        assert sign_up(client, committed, email="b@example.org").status_code == 429
    with time_machine.travel("2026-11-26 10:15Z", tick=False):  # both attempts over an hour old
        assert sign_up(client, committed, email="b@example.org").status_code == 302


def test_behind_a_proxy_the_client_ip_is_the_last_forwarded_address(client, committed, settings):
    settings.BEHIND_PROXY = True
    settings.SIGNUP_RATE_PER_IP = 1

    def post(forwarded_for, email):
        with committed():
            return client.post("/", form(email=email), HTTP_X_FORWARDED_FOR=forwarded_for)

    assert post("203.0.113.7", "a@example.org").status_code == 302
    assert post("1.2.3.4, 203.0.113.7", "b@example.org").status_code == 429, "a spoofed first entry changes nothing"
    assert post("203.0.113.8", "c@example.org").status_code == 302


@pytest.mark.redis
def test_the_rate_limit_is_shared_through_redis(client, committed, settings, redis_url):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    settings.SIGNUP_RATE_PER_IP = 2
    codes = [sign_up(client, committed, email=f"p{i}@example.org").status_code for i in range(3)]
    assert codes == [302, 302, 429]
    import redis

    assert any(key.startswith(b":1:ratelimit:signup-ip:") for key in redis.Redis.from_url(redis_url).scan_iter())


def test_signup_keeps_answering_when_the_rate_limit_cache_is_down(client, committed, settings, caplog):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{dead_port}/0",
        }
    }
    settings.SIGNUP_RATE_PER_IP = 1

    codes = [sign_up(client, committed, email=f"p{i}@example.org").status_code for i in range(2)]

    assert codes == [302, 302]
    assert Subscriber.objects.count() == 2
    assert "rate limit cache unavailable" in caplog.text


# --- Confirmation --------------------------------------------------------------------------------


def test_the_confirmation_link_shows_a_button_and_only_the_post_confirms(client, committed):
    sign_up(client, committed)
    confirm = link_in(mail.outbox[0], "confirm")

    page = client.get(confirm)
    assert page.status_code == 200 and "Confirm my subscription" in page.content.decode()
    assert Subscriber.objects.get().status == "pending", "mail scanners follow links: GET changes nothing"

    done = client.post(confirm)
    assert done.status_code == 302 and done.headers["Location"].endswith("?done=confirmed")
    assert Subscriber.objects.get().status == "active"
    assert "You&#x27;re subscribed" in client.get(done.headers["Location"]).content.decode()


def test_a_confirmation_link_works_only_once(client, committed):
    sign_up(client, committed)
    confirm = link_in(mail.outbox[0], "confirm")
    client.post(confirm)
    again = client.post(confirm)
    assert again.status_code == 200
    assert "Already confirmed" in again.content.decode()
    assert "Confirm my subscription" not in client.get(confirm).content.decode()


def test_an_expired_confirmation_link_changes_nothing(client, committed):
    with time_machine.travel("2026-11-01 12:00Z", tick=False):
        sign_up(client, committed)
    confirm = link_in(mail.outbox[0], "confirm")
    with time_machine.travel("2026-11-08 12:01Z", tick=False):
        response = client.post(confirm)
    assert response.status_code == 400 and "seven days" in response.content.decode()
    assert Subscriber.objects.get().status == "pending"


@pytest.mark.parametrize(
    "mangle", [lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), lambda t: "x" + t, lambda t: "garbage"]
)
def test_a_tampered_confirmation_link_changes_nothing(client, committed, mangle):
    sign_up(client, committed)
    token = link_in(mail.outbox[0], "confirm").split("/")[2]
    response = client.post(reverse("subscribers:confirm", args=[mangle(token)]))
    assert response.status_code == 400
    assert Subscriber.objects.get().status == "pending"


def test_a_token_for_another_purpose_does_not_confirm(client):
    subscriber = Subscriber.objects.create(email="ada@example.org", confirmation_sent_at=timezone.now())
    for purpose in ("unsubscribe", "manage"):
        response = client.post(reverse("subscribers:confirm", args=[make_token(subscriber, purpose)]))
        assert response.status_code == 400
    assert Subscriber.objects.get().status == "pending"


# --- Manage page ---------------------------------------------------------------------------------


@pytest.fixture
def active(topic):
    subscriber = Subscriber.objects.create(
        email="ada@example.org", status=Status.ACTIVE, keywords=SCRIPT, interests=SCRIPT
    )
    subscriber.topics.add(topic)
    return subscriber


def manage_url(subscriber, name="manage"):
    return reverse(f"subscribers:{name}", args=[make_token(subscriber, "manage")])


def test_the_manage_page_shows_the_preferences_with_everything_typed_escaped(client, active):
    response = client.get(manage_url(active))
    html = response.content.decode()
    assert response.status_code == 200
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in html
    assert "no-store" in response.headers["Cache-Control"]


def test_keywords_with_markup_are_stored_as_typed_and_shown_escaped_after_signup(client, committed):
    sign_up(client, committed, keywords=SCRIPT)
    subscriber = Subscriber.objects.get()
    assert subscriber.keywords == SCRIPT
    html = client.get(manage_url(subscriber)).content.decode()
    assert SCRIPT not in html and "&lt;script&gt;" in html
    html = client.post("/", form(email="bad", keywords=SCRIPT)).content.decode()
    assert SCRIPT not in html and "&lt;script&gt;" in html


def test_saving_the_manage_form_updates_every_preference(client, active):
    url = manage_url(active)
    response = client.post(
        url, form(keywords="mamba, -survey", frequency="weekly", weekday="4", max_papers="5", action="save")
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("?done=saved")
    active.refresh_from_db()
    assert (active.keywords, active.frequency, active.weekday, active.max_papers) == ("mamba, -survey", "weekly", 4, 5)
    assert not active.topics.exists()
    assert "Your preferences are saved" in client.get(response.headers["Location"]).content.decode()


def test_invalid_manage_input_is_shown_with_errors_and_nothing_saved(client, active):
    response = client.post(manage_url(active), form(max_papers="0", keywords="changed\x00"))
    assert response.status_code == 400
    active.refresh_from_db()
    assert active.keywords == SCRIPT and active.max_papers == 10


def test_pause_and_resume_from_the_manage_page(client, active):
    url = manage_url(active)
    client.post(url, {"action": "pause"})
    active.refresh_from_db()
    assert active.status == "paused"
    client.post(url, {"action": "resume"})
    active.refresh_from_db()
    assert active.status == "active"


def test_the_manage_page_needs_a_csrf_token(active):
    response = Client(enforce_csrf_checks=True).post(manage_url(active), {"action": "pause"})
    assert response.status_code == 403
    active.refresh_from_db()
    assert active.status == "active"


def test_export_downloads_the_subscribers_data_as_json(client, active):
    response = client.get(manage_url(active, "export"))
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="paperboy-subscription.json"'
    data = json.loads(response.content)
    assert data["email"] == "ada@example.org" and data["preferences"]["keywords"] == SCRIPT


def test_delete_asks_first_then_erases_everything(client, active):
    url = manage_url(active, "delete")
    page = client.get(url)
    assert page.status_code == 200 and "Yes, delete everything" in page.content.decode()
    assert Subscriber.objects.exists()
    done = client.post(url)
    assert done.status_code == 200 and "All gone" in done.content.decode()
    assert not Subscriber.objects.exists()
    assert client.get(manage_url(active)).status_code == 400


def test_a_tampered_manage_link_is_refused_politely(client, active):
    token = make_token(active, "manage")
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), make_token(active, "unsubscribe")):
        response = client.post(reverse("subscribers:manage", args=[bad]), {"action": "pause"})
        assert response.status_code == 400 and "Nothing has been changed" in response.content.decode()
    active.refresh_from_db()
    assert active.status == "active"


def test_the_manage_link_request_form_emails_only_known_addresses_and_looks_the_same(client, committed, active):
    with committed():
        known = client.post(reverse("subscribers:request_link"), {"email": "ada@example.org"})
        unknown = client.post(reverse("subscribers:request_link"), {"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 302
    assert known.headers["Location"] == unknown.headers["Location"]
    [message] = mail.outbox
    assert message.to == ["ada@example.org"] and "/manage/" in message.body


# --- Unsubscribe ---------------------------------------------------------------------------------


def unsubscribe_url(subscriber):
    return reverse("subscribers:unsubscribe", args=[make_token(subscriber, "unsubscribe")])


def test_one_click_unsubscribe_works_without_cookies_or_csrf_and_answers_200(active):
    provider = Client(enforce_csrf_checks=True)
    url = unsubscribe_url(active)

    response = provider.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert not response.cookies
    active.refresh_from_db()
    assert active.status == "unsubscribed" and active.unsubscribed_at is not None
    again = provider.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert again.status_code == 200
    active.refresh_from_db()
    assert active.status == "unsubscribed"


def test_one_click_unsubscribe_also_accepts_multipart_bodies(active):
    response = Client(enforce_csrf_checks=True).post(unsubscribe_url(active), {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    active.refresh_from_db()
    assert active.status == "unsubscribed"


def test_opening_the_unsubscribe_link_only_shows_a_button(client, active):
    response = client.get(unsubscribe_url(active))
    assert response.status_code == 200 and "<button" in response.content.decode()
    active.refresh_from_db()
    assert active.status == "active"


def test_the_unsubscribe_button_works(client, active):
    response = client.post(unsubscribe_url(active))
    assert response.status_code == 200 and "You're unsubscribed" in response.content.decode()
    active.refresh_from_db()
    assert active.status == "unsubscribed"


def test_a_tampered_or_foreign_unsubscribe_token_changes_nothing(client, active):
    token = make_token(active, "unsubscribe")
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), make_token(active, "manage"), "nonsense"):
        url = reverse("subscribers:unsubscribe", args=[bad])
        one_click = client.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
        assert one_click.status_code == 400
        page = client.get(url)
        assert page.status_code == 400 and "Nothing has been changed" in page.content.decode()
    active.refresh_from_db()
    assert active.status == "active"


def test_every_email_carries_the_one_click_headers_that_work(client, committed):
    sign_up(client, committed)
    headers = mail.outbox[0].extra_headers
    url = re.search(r"<http://[^/]+(/unsubscribe/[^>]+)>", headers["List-Unsubscribe"]).group(1)
    response = Client(enforce_csrf_checks=True).post(
        url, headers["List-Unsubscribe-Post"], content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    assert Subscriber.objects.get().status == "unsubscribed"


def use_broker(settings, url: str):
    """Queue for real (not eager) on the broker at `url`; Celery's cached producer pool is reset
    before and after, so that the test and those after it publish where their settings say."""

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = url
    app.conf.task_always_eager = False
    app._pool = app.amqp._producer_pool = None


@pytest.fixture
def broker_down(settings):
    """Celery publishing to a Redis port nobody listens on, as when Redis has stopped."""

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    use_broker(settings, f"redis://127.0.0.1:{dead_port}/0")
    yield
    app._pool = app.amqp._producer_pool = None


@pytest.mark.redis
def test_a_new_and_a_known_address_cost_the_request_the_same_work(
    client, settings, redis_url, django_assert_num_queries
):
    """Whether an address subscribes must not show in the answer's timing: the request only
    validates and queues; the worker does the different work."""
    import redis

    Subscriber.objects.create(email="known@example.org", status=Status.ACTIVE)
    use_broker(settings, redis_url)
    try:
        for email in ("new@example.org", "known@example.org"):
            with django_assert_num_queries(0):
                assert client.post("/", form(email=email)).status_code == 302
    finally:
        app._pool = app.amqp._producer_pool = None
    assert redis.Redis.from_url(redis_url).llen("celery") == 2, "both signups wait in the queue"
    assert Subscriber.objects.count() == 1 and not mail.outbox


def test_signup_keeps_answering_when_the_broker_is_down_and_lets_the_next_attempt_send(
    client, committed, broker_down, caplog
):
    response = sign_up(client, committed)

    assert response.status_code == 302 and response.headers["Location"] == reverse("subscribers:check_inbox")
    subscriber = Subscriber.objects.get()
    assert subscriber.status == "pending"
    assert subscriber.confirmation_sent_at is None, "no email went out, so the hourly slot is free again"
    assert "could not queue subscribers.subscribe; running it in the request" in caplog.text
    assert "could not queue subscribers.send_confirmation" in caplog.text


typed_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Co", "Cn")), min_size=1, max_size=60
).filter(str.strip)


@hypothesis_settings(max_examples=40, deadline=None)
@given(keywords=typed_text, interests=typed_text, author=typed_text)
def test_whatever_a_subscriber_typed_comes_back_escaped_on_their_page(keywords, interests, author):
    subscriber, _ = Subscriber.objects.get_or_create(email="fuzz@example.org", defaults={"status": Status.ACTIVE})
    Subscriber.objects.filter(pk=subscriber.pk).update(keywords=keywords, interests=interests, authors=[author])

    html = Client().get(manage_url(subscriber)).content.decode()

    assert f'value="{escape(keywords)}"' in html
    assert f">\n{escape(interests)}</textarea>" in html
    assert escape(author) in html
    assert html.count("<script") == 1, "only our own script tag"
