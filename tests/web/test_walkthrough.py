"""The README's "Five minutes with Paperboy", word for word, from a fresh database: `make run`
(bin/run-dev, for real, in a temporary var/), sign up in Chromium, confirm from the newest file in
the outbox, wait for the worker, get the digest with the documented command, open it.

The feed `make run` polls at once is a captured Hugging Face daily-papers response served from
127.0.0.1 (the network, as far as the test can have one), so the digest holds a real paper with
authors beside the seed papers. Screenshots of the signup page, the digest at 375 px with and
without its stylesheet, and the dashboard go to test-artifacts/, and to docs/ with
UPDATE_DOCS_SCREENSHOTS=1 (`make screenshots`).
"""

import email
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from email import policy

import pytest
import requests

from tests.support import ROOT
from tests.support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.support.feed_server import FeedServer, Route
from tests.support.shared import shared_feed
from tests.web.run_dev import Running, make_run

pytestmark = pytest.mark.browser

README = (ROOT / "README.md").read_text(encoding="utf-8")
WALKTHROUGH = README.split("## Five minutes with Paperboy", 1)[1].split("\n## ", 1)[0]
# What the README tells the reader to type or run, taken from it (the test fails if it changes).
SITE = "http://127.0.0.1:8000"
KEYWORDS = re.search(r"a few keywords \(`([^`]+)`\)", WALKTHROUGH).group(1)
NEWEST_EMAIL = "ls -t var/outbox | head -1"
GET_DIGEST = ".venv/bin/python manage.py senddigests --now"
FEED = "hf_daily_papers_api_2025-09-30_50papers.json"  # holds a NeRF paper, with its authors
WORKER_TIMEOUT = 90
MONTHS = "January February March April May June July August September October November December".split()
BARE_LABEL = re.compile(r"^(?!\s*--\s*$).*(?::|·)\s*$")


@dataclass
class Card:
    title: str
    text: str  # the card's part of the email's text
    authors: list[str]
    published: datetime | None
    urls: set[str]  # every address stored for the paper


@dataclass
class Walk:
    site: str
    lines: list[str]
    text: str
    html: str
    cards: list[Card]
    link_status: dict[str, int] = field(default_factory=dict)  # site links of the email -> HTTP status


def shell(command: str, running: Running) -> str:
    """A README command as printed, run in the project folder; var/ is this run's own folder."""
    command = command.replace("var/outbox", str(running.outbox))
    result = subprocess.run(  # noqa: S602 - the README's own command line, run as its reader would
        command, shell=True, cwd=ROOT, env=running.env, capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout


def newest_email(running: Running, after: int = 0) -> email.message.EmailMessage:
    """The newest email, once there are more than `after` (the worker sends them: a moment)."""
    deadline = time.monotonic() + WORKER_TIMEOUT
    while not running.outbox.is_dir() or len(list(running.outbox.iterdir())) <= after:
        if time.monotonic() > deadline:
            pytest.fail(f"no new email in {running.outbox} within {WORKER_TIMEOUT} s")
        time.sleep(0.3)
    name = shell(NEWEST_EMAIL, running).strip()
    return email.message_from_bytes((running.outbox / name).read_bytes(), policy=policy.default)


def wait_for_the_worker(running: Running, task: str) -> None:
    log = running.var / "log" / "worker.log"
    deadline = time.monotonic() + WORKER_TIMEOUT
    while time.monotonic() < deadline:
        if re.search(rf"Task {re.escape(task)}\[[^\]]+\] succeeded", log.read_text(errors="replace")):
            return
        time.sleep(0.5)
    pytest.fail(f"the worker did not run {task} within {WORKER_TIMEOUT} s; see {log}")


def stored_papers(running: Running) -> dict[str, dict]:
    with sqlite3.connect(running.var / "paperboy.sqlite3") as db:
        rows = db.execute(
            "SELECT title, authors, published, url, pdf_url, code_url, project_url FROM digest_paper"
        ).fetchall()
    return {
        title: {
            "authors": json.loads(authors or "[]"),
            "published": datetime.fromisoformat(published) if published else None,
            "urls": {u for u in (url, pdf_url, code_url, project_url) if u},
        }
        for title, authors, published, url, pdf_url, code_url, project_url in rows
    }


def cards_of(text: str, papers: dict[str, dict]) -> list[Card]:
    """The email's text cut at each paper title it shows."""
    starts = sorted((text.find(title), title) for title in papers if title in text)
    end_of_cards = text.find("\n-- \n")
    cards = []
    for i, (start, title) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else end_of_cards
        paper = papers[title]
        cards.append(Card(title, text[start:end], paper["authors"], paper["published"], paper["urls"]))
    return cards


def save(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        shutil.copyfile(path, ROOT / "docs" / f"{name}.png")


def without_stylesheet(html: str) -> str:
    return re.sub(r"<style\b.*?</style>", "", html, flags=re.DOTALL | re.IGNORECASE)


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> Walk:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    var = tmp_path_factory.mktemp("walkthrough") / "var"
    with (
        FeedServer() as network,
        sync_playwright() as playwright,
    ):
        network.routes["/api/daily_papers"] = Route(
            body=shared_feed(FEED).read_bytes(), headers={"Content-Type": "application/json"}
        )
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        with make_run(var, [network.url("/api/daily_papers")]) as running:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            site = SITE.replace(":8000", f":{running.port}")

            # 1. Open the site, type an address and the keywords, subscribe.
            page.goto(site)
            save(page, "signup")
            page.get_by_label("Your email address").fill("reader@example.org")
            page.get_by_label("Keywords").fill(KEYWORDS)
            page.get_by_role("button", name="Subscribe").click()
            page.wait_for_url("**/check-your-inbox/")

            # 2. The confirmation email is the newest file in var/outbox; open its link, press "Confirm".
            confirmation = newest_email(running)
            confirm_url = re.search(r"http://\S+/confirm/\S+/", confirmation.get_body(("plain",)).get_content())
            page.goto(confirm_url.group(0))
            page.get_by_role("button", name="Confirm").click()
            page.wait_for_url("**/manage/**")
            wait_for_the_worker(running, "digest.match_recent_papers")

            # 3. Get the digest now, open the newest .eml.
            sent = shell(GET_DIGEST, running)
            assert sent.startswith("Sent 1,"), sent
            digest = newest_email(running, after=1)
            text = digest.get_body(("plain",)).get_content().replace("\r\n", "\n")
            html = digest.get_body(("html",)).get_content()
            links = set(re.findall(r"https?://[^\s<>\"']+", text))
            status = {link: requests.get(link, timeout=10).status_code for link in links if link.startswith(site)}

            mobile = browser.new_page(viewport={"width": 375, "height": 800})
            mobile.set_content(html)
            save(mobile, "digest-375")
            mobile.set_content(without_stylesheet(html))
            save(mobile, "digest-375-unstyled")

            # 4. The admin, with the login `make run` printed: the dashboard.
            password = re.search(r"login: admin / (\S+)", "\n".join(running.lines)).group(1)
            page.goto(f"{site}/admin/")
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Log in").click()
            page.goto(f"{site}/admin/dashboard/")
            save(page, "dashboard")
            browser.close()
            return Walk(site, running.lines, text, html, cards_of(text, stored_papers(running)), status)


def test_the_walkthrough_ends_with_a_digest_of_the_polled_papers_and_the_seeds(walk):
    assert walk.lines[1] == "Polled 1 feed: 50 new papers."
    titles = [card.title for card in walk.cards]
    assert "VGGT-X: When VGGT Meets Dense Novel View Synthesis" in titles, "a paper of the feed polled at start"
    assert len(titles) >= 2 and all(title in walk.html for title in titles)


def test_cards_of_papers_with_authors_show_them(walk):
    with_authors = [card for card in walk.cards if card.authors]
    assert with_authors
    for card in with_authors:
        assert card.authors[0] in card.text, card.title


def test_every_link_to_the_site_in_the_digest_works(walk):
    assert walk.link_status
    assert {link: code for link, code in walk.link_status.items() if code != 200} == {}


def test_every_card_has_a_date(walk):
    for card in walk.cards:
        day = card.published
        assert day is not None, card.title
        month = MONTHS[day.month - 1]
        assert re.search(rf"\b{day.day}\s+{month[:3]}|{month[:3]}\w*\.?\s+{day.day}\b|{day:%Y-%m-%d}", card.text), (
            card.title
        )


def test_every_card_has_a_working_link_to_the_paper(walk):
    for card in walk.cards:
        links = set(re.findall(r"https?://[^\s<>\"']+", card.text))
        on_the_site = tuple(f"{walk.site}/{part}" for part in ("paper", "archive/"))  # the paper's page there
        to_the_paper = {link for link in links if link in card.urls or link.startswith(on_the_site)}
        assert to_the_paper, card.title
        assert all(walk.link_status.get(link, 200) == 200 for link in to_the_paper), card.title


def test_no_text_line_of_the_email_ends_in_a_bare_label(walk):
    bare = [line for line in walk.text.splitlines() if BARE_LABEL.match(line)]
    assert bare == []


def test_the_readme_walkthrough_is_what_this_test_follows():
    assert SITE in WALKTHROUGH and NEWEST_EMAIL in WALKTHROUGH and GET_DIGEST in WALKTHROUGH
    assert KEYWORDS == '"neural field", NeRF'
    assert '"Confirm"' in WALKTHROUGH and "/admin/" in WALKTHROUGH


def test_the_screenshots_the_docs_show_are_made_here():
    for name in ("signup", "digest-375", "digest-375-unstyled", "dashboard"):
        assert (ROOT / "docs" / f"{name}.png").is_file(), f"docs/{name}.png: run `make screenshots`"
