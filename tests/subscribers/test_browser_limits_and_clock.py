"""In Debian's Chromium against a live server: the keywords field counts as the reader types and
never cuts what they paste, and the next digest is told on the clock of the reader's browser."""

import re

import pytest
from django.core import mail

from subscribers.models import Subscriber
from tests.support.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TOO_LONG = ", ".join(f"word{n}" for n in range(100))[:600]


def test_the_keywords_field_counts_as_you_type_and_keeps_a_paste_over_the_limit_whole(browser_page, live_server):
    page = browser_page
    try:
        page.goto(live_server.url + "/")
        keywords = page.get_by_label("Keywords")
        count = page.locator("#id_keywords_count")
        assert count.inner_text() == "0 / 500 characters"
        keywords.fill("NeRF, gaussian splatting")
        assert count.inner_text() == "24 / 500 characters"
        assert "over" not in (count.get_attribute("class") or "")

        keywords.fill(TOO_LONG)  # as a paste: the whole text at once
        assert keywords.input_value() == TOO_LONG, "nothing was cut"
        assert count.inner_text() == "600 / 500 characters: 100 too many"
        assert "over" in count.get_attribute("class")

        page.get_by_label("Your email address").fill("grace@example.org")
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_load_state()
        assert "This is 600 characters long and the limit is 500" in page.locator("#field-keywords").inner_text()
        assert page.get_by_label("Keywords").input_value() == TOO_LONG
        assert not Subscriber.objects.exists()
        assert page.problems == [], page.problems
    except Exception:
        screenshot(page, "failure-keywords-limit")
        raise


def test_after_confirming_the_first_digest_is_announced_in_the_browsers_time_zone(chromium, live_server, settings):
    settings.SITE_URL = live_server.url
    context = chromium.new_context(timezone_id="Asia/Tokyo")
    page = context.new_page()
    try:
        page.goto(live_server.url + "/")
        page.get_by_label("Your email address").fill("kenji@example.org")
        page.get_by_label("Keywords").fill("NeRF")
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_url("**/check-your-inbox/")
        [message] = mail.outbox
        page.goto(re.search(r"http://\S+/confirm/\S+/", message.body).group(0))
        page.get_by_role("button", name="Confirm my subscription").click()
        page.wait_for_url("**/manage/**")

        notice = page.locator("[role=status]").inner_text()
        assert re.fullmatch(
            r"You're subscribed\. Your first digest arrives (today|tomorrow), \w+ \d+ \w+, at 08:00 "
            r"\(Asia/Tokyo time\)\.",
            notice,
        ), notice
        assert "(Asia/Tokyo time)" in page.locator(".next-delivery").inner_text()
        # A used link no longer offers to confirm.
        page.goto(re.search(r"http://\S+/confirm/\S+/", message.body).group(0))
        assert page.locator("h1").inner_text() == "Already confirmed"
        assert page.get_by_role("button", name="Confirm my subscription").count() == 0
    except Exception:
        screenshot(page, "failure-first-digest-clock")
        raise
    finally:
        context.close()
