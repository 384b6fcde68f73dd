"""The whole subscriber journey in Debian's Chromium against a live server: sign up, confirm from
the email, change a preference, unsubscribe. Screenshots land in test-artifacts/."""

import re

import pytest
from django.core import mail

from subscribers.models import Subscriber, Topic
from tests.support.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def topics():
    return [
        Topic.objects.create(
            slug="nerf",
            name="Neural fields",
            description="NeRFs, Gaussian splatting and 3D reconstruction.",
            position=1,
        ),
        Topic.objects.create(
            slug="llm-efficiency",
            name="Efficient LLMs",
            description="Making attention and inference cheaper.",
            position=2,
        ),
    ]


def test_a_visitor_signs_up_confirms_changes_a_preference_and_unsubscribes(browser_page, live_server, settings, topics):
    settings.SITE_URL = live_server.url
    page = browser_page
    step = "signup"
    try:
        page.goto(live_server.url + "/")
        screenshot(page, "signup")
        assert page.locator("h1").inner_text().startswith("The week's trending papers")
        assert page.locator("select[name=timezone]").input_value() == "Europe/Berlin", (
            "zone pre-filled from the browser"
        )
        assert page.locator(".weekday").is_hidden(), "weekday only matters for weekly digests"

        page.get_by_label("Your email address").fill("grace@example.org")
        page.get_by_text("Neural fields", exact=True).click()
        page.get_by_label("Keywords").fill('"neural field", NeRF, -medical')
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_url("**/check-your-inbox/")
        assert "Check your inbox" in page.locator("h1").inner_text()

        step = "confirm"
        subscriber = Subscriber.objects.get()
        assert subscriber.status == "pending" and subscriber.timezone == "Europe/Berlin"
        assert [t.slug for t in subscriber.topics.all()] == ["nerf"]
        [message] = mail.outbox
        confirm_url = re.search(r"http://\S+/confirm/\S+/", message.body).group(0)
        page.goto(confirm_url)
        page.get_by_role("button", name="Confirm my subscription").click()
        page.wait_for_url("**/manage/**")
        assert "You're subscribed" in page.locator("[role=status]").inner_text()
        subscriber.refresh_from_db()
        assert subscriber.status == "active"

        step = "manage"
        page.get_by_label("Papers per email").fill("5")
        page.get_by_text("Weekly", exact=True).click()
        assert page.locator(".weekday").is_visible()
        page.get_by_label("Weekday (weekly digests)").select_option("Friday")
        page.get_by_role("button", name="Save preferences").click()
        page.wait_for_url("**?done=saved")
        subscriber.refresh_from_db()
        assert (subscriber.max_papers, subscriber.frequency, subscriber.weekday) == (5, "weekly", 4)
        assert subscriber.keywords == '"neural field", NeRF, -medical'

        step = "unsubscribe"
        page.get_by_role("link", name="Unsubscribe").click()
        page.wait_for_url("**/unsubscribe/**")
        subscriber.refresh_from_db()
        assert subscriber.status == "active", "opening the page alone changes nothing"
        page.get_by_role("button", name="Unsubscribe").click()
        assert "You're unsubscribed" in page.locator("h1").inner_text()
        subscriber.refresh_from_db()
        assert subscriber.status == "unsubscribed"
        assert page.problems == [], f"console errors (CSP?): {page.problems}"
    except Exception:
        screenshot(page, f"failure-{step}")
        raise


def test_signup_errors_show_in_the_browser_with_the_rest_kept(browser_page, live_server, topics):
    page = browser_page
    try:
        page.goto(live_server.url + "/")
        page.get_by_label("Your email address").fill("not an address")
        page.get_by_label("Keywords").fill("<script>alert(1)</script>")
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_load_state()
        assert "valid email address" in page.locator("#field-email .error").inner_text()
        assert page.get_by_label("Keywords").input_value() == "<script>alert(1)</script>"
        assert page.get_by_label("Your email address").input_value() == "not an address"
        assert not Subscriber.objects.exists()
        assert page.problems == []
    except Exception:
        screenshot(page, "failure-signup-errors")
        raise
