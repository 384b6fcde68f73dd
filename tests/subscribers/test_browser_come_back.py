"""In Debian's Chromium against a live server: an unsubscribed reader comes back through the
signup form and the emailed manage link, and a digest's web copy emails the manage link instead
of showing it."""

import re

import pytest
from django.core import mail

from digest.delivery.digest_email import build_digest_context
from subscribers.models import Subscriber, Topic
from tests.support.browser import screenshot
from tests.support.digest_samples import make_digest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_unsubscribed_reader_signs_up_again_and_resubscribes_with_their_kept_preferences(
    browser_page, live_server, settings
):
    settings.SITE_URL = live_server.url
    topic = Topic.objects.create(slug="nerf", name="Neural fields", description="NeRFs and 3D reconstruction.")
    reader = Subscriber.objects.create(email="grace@example.org", status="unsubscribed", keywords="mine", max_papers=5)
    reader.topics.add(topic)
    page = browser_page
    try:
        page.goto(live_server.url + "/")
        page.get_by_label("Your email address").fill("grace@example.org")
        page.get_by_label("Keywords").fill("a stranger's words")
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_url("**/check-your-inbox/")
        reader.refresh_from_db()
        assert (reader.status, reader.keywords) == ("unsubscribed", "mine"), "the form changed nothing"

        [message] = mail.outbox
        page.goto(re.search(r"http://\S+/manage/\S+/", message.body).group(0))
        page.get_by_role("button", name="Resubscribe").click()
        page.wait_for_url("**?done=resubscribed")
        assert "subscribed again" in page.locator("[role=status]").inner_text()
        reader.refresh_from_db()
        assert (reader.status, reader.keywords, reader.max_papers) == ("active", "mine", 5)
        assert page.problems == [], page.problems
    except Exception:
        screenshot(page, "failure-come-back")
        raise


def test_the_web_copy_of_a_digest_emails_the_manage_link_on_request(browser_page, live_server, settings):
    settings.SITE_URL = live_server.url
    subscriber, candidates, delivery = make_digest(count=2, more=0)
    page = browser_page
    try:
        page.goto(build_digest_context(subscriber, candidates, 0, delivery)["view_url"])
        assert candidates[0].paper.title in page.content()
        assert page.locator("a[href*='/manage/'], a[href*='/unsubscribe/'], a[href*='/feedback/']").count() == 0
        page.get_by_role("button", name="email me my manage link").click()
        page.wait_for_url("**?sent=email-manage-link")
        assert "emailed your manage link" in page.locator("[role=status]").inner_text()
        [message] = mail.outbox
        assert message.to == [subscriber.email] and "/manage/" in message.body
        assert page.problems == [], page.problems
    except Exception:
        screenshot(page, "failure-web-copy")
        raise
