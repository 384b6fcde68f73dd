"""Hostile input, every surface in one place: markup in paper titles, abstracts, author names, feed
links, subscriber keywords, interests, followed authors and topic names is shown as text in the
emails, the public pages and the admin, never run (asserted on the rendered output).
"""

from html.parser import HTMLParser

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from digest.delivery.digest_email import build_digest_context, build_digest_message, feedback_url
from digest.models import Candidate, Delivery, Feed, Paper
from digest.papers.feed_parsing import parse_document
from digest.papers.ingestion import ingest_document
from subscribers.emails import confirmation_message, manage_link_message
from subscribers.models import Subscriber, Topic
from subscribers.tokens import make_token
from tests.support.digest_samples import as_picks, hold
from tests.support.signup import form

pytestmark = pytest.mark.django_db

SCRIPT = '<script>alert("pwned")</script>'
IMG = "<img src=x onerror=alert(1)>"
ATTR = '" onmouseover="alert(2)'
PAYLOAD = f"{SCRIPT}{IMG}{ATTR}"


class LiveMarkup(HTMLParser):
    """Collects what a browser would run or load from the payload: script text, event handlers,
    the payload's image and `javascript:` links."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on") and "alert(" in value:
                self.found.append(f"<{tag} {name}={value!r}>")
            if name in {"href", "src", "action", "formaction"} and value.startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")
        if tag == "img" and dict(attrs).get("src") == "x":
            self.found.append("<img src=x>")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and "pwned" in data:
            self.found.append(f"<script>{data[:40]}")


def assert_inert(html: str, *, where: str) -> None:
    """The payload may be shown as text, escaped; nothing of it is markup a browser would run."""
    parser = LiveMarkup()
    parser.feed(html)
    parser.close()
    assert parser.found == [], f"live markup in {where}: {parser.found}"
    assert "<script>alert" not in html, f"unescaped script in {where}"


def part(message, content_type: str) -> str:
    if content_type == "text/plain":
        return message.body
    return next(content for content, kind in message.alternatives if kind == content_type)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()


@pytest.fixture
def hostile():
    """A hostile paper matched to a hostile subscriber, in a sent digest."""
    topic = Topic.objects.create(
        slug="evil", name=f"Topic {PAYLOAD}", description=f"About {PAYLOAD}", keywords=f'"{SCRIPT}"'
    )
    subscriber = Subscriber.objects.create(
        email="eve@example.org",
        status=Subscriber.Status.ACTIVE,
        keywords=f'"{PAYLOAD}", nerf',
        interests=f"I like {PAYLOAD}",
        authors=[f"Eve {PAYLOAD}"],
        categories=["cs.LG"],
    )
    subscriber.topics.add(topic)
    paper = Paper.objects.create(
        arxiv_id="2611.00666",
        guid="2611.00666",
        title=f"Attention {PAYLOAD} is all",
        abstract=f"We show {PAYLOAD}.",
        authors=[f"Mallory {PAYLOAD}", "Trent"],
        categories=["cs.LG"],
        primary_category="cs.LG",
        published=timezone.now(),
        url="https://arxiv.org/abs/2611.00666",
        pdf_url="https://arxiv.org/pdf/2611.00666",
        comment=PAYLOAD,
        journal_ref=PAYLOAD,
        upvotes=3,
    )
    delivery = Delivery.objects.create(
        subscriber=subscriber,
        period="2026-11-26",
        scheduled_for=timezone.now(),
        status=Delivery.Status.SENT,
        subject=f"1 new paper on {PAYLOAD}",
        paper_count=1,
        last_error=PAYLOAD,
        message_id="<1@example.org>",
    )
    candidate = Candidate.objects.create(
        subscriber=subscriber, paper=paper, score=0.9, reason=f"matches your keyword '{PAYLOAD}'"
    )
    hold(delivery, [candidate])
    waiting_paper = Paper.objects.create(
        guid="https://evil.example/2",
        title=f"Next {PAYLOAD}",
        abstract=PAYLOAD,
        authors=[PAYLOAD],
        published=timezone.now(),
    )
    Candidate.objects.create(subscriber=subscriber, paper=waiting_paper, score=0.8, reason=f"by {PAYLOAD}")
    return {"topic": topic, "subscriber": subscriber, "paper": paper, "delivery": delivery, "candidate": candidate}


# --- emails ----------------------------------------------------------------------------------------


def test_the_digest_email_shows_hostile_papers_and_keywords_as_text(hostile):
    message = build_digest_message(
        hostile["subscriber"], as_picks([hostile["candidate"]]), 1, delivery=hostile["delivery"]
    )
    html = part(message, "text/html")
    assert_inert(html, where="digest HTML")
    assert "Attention &lt;script&gt;alert(" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Mallory &lt;script&gt;" in html
    assert SCRIPT in part(message, "text/plain")  # the text part is text: shown as typed, never run
    assert "\n" not in message.subject and "\r" not in message.subject


def test_the_confirmation_and_manage_link_emails_are_inert(hostile):
    subscriber = hostile["subscriber"]
    for message in (manage_link_message(subscriber), confirmation_message(subscriber)):
        assert_inert(part(message, "text/html"), where=message.subject)


# --- public pages ------------------------------------------------------------------------------


def test_the_signup_page_lists_hostile_trending_papers_as_text(client, hostile):
    html = client.get("/").content.decode()
    assert_inert(html, where="signup page")
    assert "Attention &lt;script&gt;" in html


def test_the_signup_form_echoes_hostile_input_escaped_when_it_is_refused(client, hostile):
    response = client.post("/", form(email=f"not-an-email{SCRIPT}", interests=PAYLOAD, authors=PAYLOAD))
    html = response.content.decode()
    assert response.status_code == 400
    assert_inert(html, where="refused signup form")
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in html


def test_hostile_keywords_typed_at_signup_are_stored_as_typed_and_inert_on_the_manage_page(client):
    response = client.post("/", form(email="new@example.org", keywords=f'"{SCRIPT}", nerf', interests=PAYLOAD))
    assert response.status_code == 302
    subscriber = Subscriber.objects.get(email="new@example.org")
    assert subscriber.interests == PAYLOAD
    html = client.get(reverse("subscribers:manage", args=[make_token(subscriber, "manage")])).content.decode()
    assert_inert(html, where="manage page")
    assert "&lt;script&gt;" in html


def test_the_manage_and_export_pages_of_a_hostile_subscriber_are_inert(client, hostile):
    token = make_token(hostile["subscriber"], "manage")
    html = client.get(reverse("subscribers:manage", args=[token])).content.decode()
    assert_inert(html, where="manage page")
    assert "Eve &lt;script&gt;" in html and "Topic &lt;script&gt;" in html
    export = client.get(reverse("subscribers:export", args=[token]))
    assert export["Content-Type"] == "application/json"  # never sniffed as HTML
    assert export["X-Content-Type-Options"] == "nosniff"


def test_the_view_in_browser_archive_paper_list_and_feedback_pages_are_inert(client, hostile):
    subscriber, paper = hostile["subscriber"], hostile["paper"]
    context = build_digest_context(subscriber, as_picks([hostile["candidate"]]), 1, hostile["delivery"])
    day = paper.published.date().isoformat()
    pages = {
        "view in browser": context["view_url"],
        "archive": "/archive/",
        "archive day": f"/archive/{day}/",
        "paper list": "/papers/",
        "feedback": feedback_url(subscriber, paper.id, "more"),
    }
    for where, url in pages.items():
        response = client.get(url.replace("http://127.0.0.1:8000", "").replace("http://testserver", ""))
        assert response.status_code == 200, where
        assert_inert(response.content.decode(), where=where)
    assert "Attention &lt;script&gt;" in client.get(f"/archive/{day}/").content.decode()


# --- admin -------------------------------------------------------------------------------------


def test_every_admin_page_showing_hostile_rows_is_inert(client, staff, hostile):
    subscriber, paper, topic = hostile["subscriber"], hostile["paper"], hostile["topic"]
    feed = Feed.objects.create(url="https://evil.example/feed", name=f"Feed {PAYLOAD}", last_error=PAYLOAD)
    pages = [
        "/admin/",
        "/admin/dashboard/",
        "/admin/digest/paper/",
        f"/admin/digest/paper/?q={SCRIPT}",
        f"/admin/digest/paper/{paper.pk}/change/",
        "/admin/digest/feed/",
        f"/admin/digest/feed/{feed.pk}/change/",
        "/admin/digest/candidate/",
        "/admin/digest/delivery/",
        f"/admin/digest/delivery/{hostile['delivery'].pk}/change/",
        "/admin/subscribers/topic/",
        f"/admin/subscribers/topic/{topic.pk}/change/",
        "/admin/subscribers/subscriber/",
        f"/admin/subscribers/subscriber/{subscriber.pk}/change/",
        f"/admin/subscribers/subscriber/{subscriber.pk}/digests/",
        f"/admin/subscribers/subscriber/{subscriber.pk}/preview/",
        f"/admin/subscribers/subscriber/{subscriber.pk}/preview/html/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_inert(response.content.decode(), where=url)


# --- ingestion -----------------------------------------------------------------------------------

HOSTILE_ATOM = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom">
  <title>ArXiv Query: search_query=all:evil</title>
  <id>http://arxiv.org/api/evil</id>
  <updated>2026-11-26T00:00:00Z</updated>
  <entry>
    <id>http://arxiv.org/abs/2611.00777v1</id>
    <updated>2026-11-26T00:00:00Z</updated>
    <published>2026-11-26T00:00:00Z</published>
    <title>Robust &lt;script&gt;alert(1)&lt;/script&gt; fields</title>
    <summary>We &lt;img src=x onerror=alert(1)&gt; show.</summary>
    <author><name>Eve &lt;b onmouseover="alert(2)"&gt;</name></author>
    <link href="javascript:alert(3)" rel="alternate" type="text/html"/>
    <link title="pdf" href="javascript:alert(4)" rel="related" type="application/pdf"/>
    <arxiv:primary_category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
</feed>"""

HOSTILE_RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Evil blog</title>
<link>https://evil.example/</link><description>d</description>
<item><title>Nice &lt;script&gt;alert(1)&lt;/script&gt; paper</title><link>javascript:alert(5)</link>
<guid>https://evil.example/p/1</guid><description>&lt;img src=x onerror=alert(1)&gt;text</description>
<author>Mallory &lt;script&gt;x&lt;/script&gt;</author></item></channel></rss>"""


@pytest.mark.parametrize("body, kind", [(HOSTILE_ATOM, Feed.Kind.ARXIV_API), (HOSTILE_RSS, Feed.Kind.RSS)])
def test_ingested_hostile_feeds_store_text_and_only_http_links(body, kind):
    feed = Feed.objects.create(url=f"https://evil.example/{kind}", kind=kind)
    report = ingest_document(body, feed.url, feed)
    assert not report.failed and report.counts.new == 1, report.problems
    stored = Paper.objects.get()
    for name in ("title", "abstract"):
        assert "<" not in getattr(stored, name), name
    assert all("<" not in author for author in stored.authors)
    for name in ("url", "pdf_url", "code_url", "project_url"):
        value = getattr(stored, name)
        assert value == "" or value.startswith(("https://", "http://")), f"{name}={value!r}"


def test_parsing_never_keeps_a_script_link_from_any_feed_kind():
    for body in (HOSTILE_ATOM, HOSTILE_RSS):
        for paper in parse_document(body).papers:
            links = [paper.url, paper.pdf_url, paper.code_url, paper.project_url]
            assert not any(link.lower().startswith("javascript:") for link in links), links
