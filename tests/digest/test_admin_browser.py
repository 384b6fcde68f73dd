"""The operator's side in Debian's Chromium against a live server: log into the admin, open the
dashboard and a subscriber's next-digest preview. Screenshots land in test-artifacts/, and the
dashboard's is copied to docs/dashboard.png for the docs when UPDATE_DOCS_SCREENSHOTS is set."""

import io
import os
import random
import shutil
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from digest.models import Candidate, Delivery, Feed, Paper, PaperSource
from subscribers.models import Subscriber, Topic
from tests.support import ROOT
from tests.support.browser import screenshot

DOCS_SCREENSHOT = ROOT / "docs" / "dashboard.png"
PASSWORD = "a-long-admin-password"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(chromium):
    page = chromium.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(15_000)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    # Any blocked script or style (our Content-Security-Policy) shows up here; the favicon we lack does not count.
    page.on(
        "console",
        lambda msg: (
            page.errors.append(f"{msg.text} {msg.location}")
            if msg.type == "error" and "favicon.ico" not in msg.location.get("url", "")
            else None
        ),
    )
    yield page


def backdate(model, row, **fields) -> None:
    model.objects.filter(pk=row.pk).update(**fields)


def a_month_of_history() -> Subscriber:
    """The seed papers and topics, plus 30 days of signups, digests and sightings to chart."""
    call_command("loadseeds", stdout=io.StringIO())
    rng = random.Random(7)
    now = timezone.now()
    topics = list(Topic.objects.all())
    feeds = [
        Feed.objects.create(
            url=f"https://rss.arxiv.org/rss/{cat}", name=f"arXiv {cat}", last_polled_at=now, last_success_at=now
        )
        for cat in ("cs.LG", "cs.CV", "cs.CL")
    ] + [
        Feed.objects.create(
            url="https://huggingface.co/api/daily_papers", name="Hugging Face daily", last_success_at=now
        )
    ]
    for i in range(240):
        paper = Paper.objects.create(guid=f"history-{i}", title=f"History paper {i}")
        sighting = PaperSource.objects.create(paper=paper, feed=feeds[i % len(feeds)])
        backdate(PaperSource, sighting, first_seen=now - timedelta(days=rng.randrange(30), hours=rng.randrange(24)))
    for i in range(90):
        created = now - timedelta(days=30 - i // 3, hours=3)
        status = rng.choices(["active", "pending", "paused", "unsubscribed"], [7, 1, 1, 1])[0]
        person = Subscriber.objects.create(email=f"reader{i}@example.org", status=status)
        backdate(
            Subscriber,
            person,
            created_at=created,
            confirmed_at=created + timedelta(hours=2) if status != "pending" else None,
            unsubscribed_at=created + timedelta(days=rng.randrange(1, 10)) if status == "unsubscribed" else None,
        )
        person.topics.set(rng.sample(topics, 2))
        for day in range(0, 30 - i // 3, 2):
            sent_at = now - timedelta(days=day, hours=1)
            Delivery.objects.create(
                subscriber=person,
                period=f"d{day}",
                scheduled_for=sent_at,
                status="failed" if rng.random() < 0.05 else "sent",
                sent_at=sent_at,
            )
    reader = Subscriber.objects.create(
        email="grace@example.org", status="active", max_papers=5, keywords="diffusion, NeRF"
    )
    for score, paper in enumerate(Paper.objects.filter(feeds__url__startswith="seeds/")[:6]):
        Candidate.objects.create(subscriber=reader, paper=paper, score=1 - score / 10, reason="Keyword: diffusion")
    return reader


def test_an_operator_logs_in_opens_the_dashboard_and_previews_a_digest(page, live_server, settings):
    settings.SITE_URL = live_server.url
    reader = a_month_of_history()
    User.objects.create_superuser("ops", "ops@example.org", PASSWORD)
    step = "login"
    try:
        page.goto(live_server.url + "/admin/")
        page.get_by_label("Username").fill("ops")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(live_server.url + "/admin/")
        screenshot(page, "admin-index")

        step = "dashboard"
        page.get_by_role("link", name="Dashboard", exact=True).click()
        page.wait_for_url(live_server.url + "/admin/dashboard/")
        charts = page.locator("svg[role=img]")
        assert charts.count() == 4
        assert "No data yet." not in page.locator(".dashboard-charts").inner_text()
        assert page.locator("#chart-topics rect").count() >= 5
        assert page.locator("#queue-length strong").inner_text().isdigit()
        dashboard_png = screenshot(page, "admin-dashboard")
        if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
            # Only on request, so that `make test` leaves the tracked tree clean.
            shutil.copyfile(dashboard_png, DOCS_SCREENSHOT)

        step = "preview"
        page.goto(f"{live_server.url}/admin/subscribers/subscriber/{reader.pk}/change/")
        page.get_by_role("link", name="Preview next digest").click()
        page.wait_for_url(f"**/subscribers/subscriber/{reader.pk}/preview/")
        first_title = Candidate.objects.filter(subscriber=reader).order_by("-score").first().paper.title
        frame = page.frame_locator("iframe.digest-preview-frame")
        assert first_title.split()[0] in frame.locator("body").inner_text()
        assert first_title.split()[0] in page.locator(".digest-preview-text").inner_text()
        screenshot(page, "admin-digest-preview")

        step = "topic"
        topic = Topic.objects.get(slug="diffusion-models")
        page.goto(f"{live_server.url}/admin/subscribers/topic/{topic.pk}/change/")
        assert page.locator("#topic-preview tbody tr").count() >= 1
        screenshot(page, "admin-topic-preview")
        page.goto(f"{live_server.url}/admin/digest/feed/")
        screenshot(page, "admin-feeds")
        assert page.errors == []
    except BaseException:
        screenshot(page, f"admin-failed-at-{step}")
        raise
    assert mail.outbox == []
    assert not Delivery.objects.filter(subscriber=reader).exists()  # so no candidate was taken by a digest
