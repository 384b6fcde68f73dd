"""Pages opened by a signed link: a digest link expires and never hands out a manage link, and no
token page is ever stored by a cache on the way."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone

from digest.delivery.digest_email import build_digest_context, feedback_url
from subscribers.tokens import DIGEST_LINK_LIFETIME, LIFETIMES, make_token
from tests.support.digest_samples import make_digest

pytestmark = pytest.mark.django_db

SITE = "http://127.0.0.1:8000"
TOKEN_VIEWS = {
    "subscribers:manage",
    "subscribers:export",
    "subscribers:delete",
    "subscribers:confirm",
    "subscribers:unsubscribe",
    "digest:view",
    "digest:feedback",
    "digest:feedback_paper",
    "digest:liked_papers",
    "digest:remove_liked",
    "digest:undo_marked",
}


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = SITE


@pytest.fixture
def digest():
    subscriber, candidates, delivery = make_digest(count=3, more=1)
    return subscriber, candidates, delivery


def web_copy_path(subscriber, candidates, delivery) -> str:
    return build_digest_context(subscriber, candidates, 1, delivery)["view_url"].removeprefix(SITE)


def links_in(html: str) -> list[str]:
    """Every link and form target of the page, as site paths (links elsewhere are left out)."""
    found = [link.replace("&amp;", "&") for link in re.findall(r'(?:href|action)="([^"]*)"', html)]
    return [link.removeprefix(SITE) for link in found if link.startswith(("/", SITE))]


def route_name(path: str) -> str | None:
    try:
        match = resolve(path.split("?")[0].split("#")[0])
    except Exception:
        return None
    return f"{match.namespace}:{match.url_name}" if match.namespace else match.url_name


# --- a digest link expires ---------------------------------------------------------------------


def test_digest_links_expire_and_the_lifetime_is_a_named_constant():
    assert LIFETIMES["digest"] == DIGEST_LINK_LIFETIME == timedelta(days=60)


def test_a_digest_link_made_400_days_ago_no_longer_opens(client, digest):
    with time_machine.travel(timezone.now() - timedelta(days=400)):
        path = web_copy_path(*digest)

    assert client.get(path).status_code == 404


def test_a_digest_link_opens_until_its_lifetime_and_never_after(client, digest):
    made = timezone.now()
    with time_machine.travel(made, tick=False) as clock:
        path = web_copy_path(*digest)
        clock.shift(DIGEST_LINK_LIFETIME - timedelta(minutes=1))
        assert client.get(path).status_code == 200
        clock.shift(timedelta(minutes=2))
        assert client.get(path).status_code == 404


# --- the web copy carries no manage link ---------------------------------------------------------


def test_the_web_copy_carries_no_link_that_changes_or_reveals_the_subscription(client, digest):
    response = client.get(web_copy_path(*digest))

    html = response.content.decode()
    assert response.status_code == 200
    assert digest[1][0].paper.title in html
    reachable = {route_name(link) for link in links_in(html)}
    assert reachable.isdisjoint(TOKEN_VIEWS - {"digest:view"}), reachable
    assert "/manage/" not in html.replace('href="/manage/"', "")
    assert "/unsubscribe/" not in html and "/feedback/" not in html
    assert digest[0].email not in html


def test_the_web_copy_offers_to_email_the_manage_link_to_the_subscribers_own_address(
    client, digest, django_capture_on_commit_callbacks
):
    subscriber, candidates, delivery = digest
    path = web_copy_path(subscriber, candidates, delivery)
    assert 'name="action" value="email-manage-link"' in client.get(path).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(path, {"action": "email-manage-link"}, follow=True)

    assert response.status_code == 200
    assert "emailed your manage link" in response.content.decode()
    assert "/manage/" not in response.content.decode().replace('href="/manage/"', "")
    assert [message.to for message in mail.outbox] == [[subscriber.email]]
    assert re.search(r"/manage/[^/\s]+/", mail.outbox[0].body)


def test_asking_again_and_again_sends_at_most_one_email_an_hour(client, digest, django_capture_on_commit_callbacks):
    path = web_copy_path(*digest)
    with django_capture_on_commit_callbacks(execute=True):
        answers = [client.post(path, {"action": "email-manage-link"}).status_code for _ in range(5)]

    assert answers == [302] * 5
    assert len(mail.outbox) == 1


def test_a_stranger_posting_to_an_expired_digest_link_sends_nothing(client, digest, django_capture_on_commit_callbacks):
    with time_machine.travel(timezone.now() - timedelta(days=400)):
        path = web_copy_path(*digest)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(path, {"action": "email-manage-link"}).status_code == 404
    assert mail.outbox == []


def test_feedback_pages_carry_no_manage_link(client, digest):
    subscriber, candidates, delivery = digest
    items = build_digest_context(subscriber, candidates, 0, delivery)["items"]
    preview_link = feedback_url(subscriber, candidates[1].paper_id, "less")

    for url in (items[0].more_url, preview_link):
        path = url.removeprefix(SITE)
        for response in (client.get(path), client.post(path)):
            assert response.status_code == 200
            reachable = {route_name(link) for link in links_in(response.content.decode())}
            assert "subscribers:manage" not in reachable and "subscribers:unsubscribe" not in reachable


# --- every token page: Cache-Control: private, no-store -----------------------------------------


def token_routes(resolver: URLResolver | None = None, prefix: str = "", namespace: str = ""):
    """(route name, pattern) of every URL whose path carries a `token`."""
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}:{pattern.namespace}".strip(":") if pattern.namespace else namespace
            yield from token_routes(pattern, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern) and "<str:token>" in str(pattern.pattern):
            yield f"{namespace}:{pattern.name}", prefix + str(pattern.pattern)


def test_the_list_of_token_pages_is_complete():
    assert {name for name, _ in token_routes()} == TOKEN_VIEWS


def urls_for(route: str, token: str) -> str:
    return "/" + route.replace("<str:token>", token).replace("<int:paper_id>", "1").replace(
        "<str:direction>", "more"
    ).replace("<int:liked_id>", "1").replace("<int:marked_id>", "1")


def test_every_token_page_is_private_and_never_stored_whatever_the_token(client, digest):
    subscriber, _, delivery = digest
    good = {
        "subscribers:manage": make_token(subscriber, "manage"),
        "subscribers:export": make_token(subscriber, "manage"),
        "subscribers:delete": make_token(subscriber, "manage"),
        "subscribers:unsubscribe": make_token(subscriber, "unsubscribe"),
        "subscribers:confirm": make_token(subscriber, "confirm"),
        "digest:view": make_token(subscriber, "digest", {"d": delivery.pk}),
        "digest:feedback": make_token(subscriber, "feedback", {"p": 1, "d": "more"}),
        "digest:feedback_paper": make_token(subscriber, "feedback", {"digest": delivery.pk}),
        "digest:liked_papers": make_token(subscriber, "manage"),
        "digest:remove_liked": make_token(subscriber, "manage"),
        "digest:undo_marked": make_token(subscriber, "manage"),
    }
    client = Client(raise_request_exception=False)
    for name, route in token_routes():
        for token in (good[name], "not-a-token"):
            response = client.get(urls_for(route, token))
            directives = {part.strip() for part in response.get("Cache-Control", "").split(",")}
            assert {"private", "no-store"} <= directives, (name, token[:10], response.status_code, directives)
