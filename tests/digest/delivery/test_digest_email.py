import re
from dataclasses import replace
from email import message_from_bytes, policy
from email.utils import parseaddr, parsedate_to_datetime

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from digest.delivery.claims import load_subscribers
from digest.delivery.digest_email import (
    build_digest_context,
    build_digest_message,
    clear_card_cache,
    delivery_papers,
    digest_subject,
    excerpt,
    paper_card,
    short_authors,
    subject_topics,
)
from digest.delivery.picks import author_names
from digest.models import Candidate, Delivery, Paper
from subscribers.tokens import make_token, read_payload
from tests.support.browser import screenshot
from tests.support.digest_samples import as_picks, hold, make_digest, make_paper, make_subscriber, with_reason

pytestmark = pytest.mark.django_db

SITE = "https://paperboy.example.org"


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = SITE
    settings.DEFAULT_FROM_EMAIL = "Paperboy <digest@paperboy.example.org>"


def parsed(message):
    return message_from_bytes(message.message().as_bytes(linesep="\r\n"), policy=policy.default)


def parts(message) -> tuple[str, str]:
    email = parsed(message)
    return email.get_body(("plain",)).get_content(), email.get_body(("html",)).get_content()


def token_from(url: str, route: str) -> str:
    match = re.fullmatch(re.escape(SITE) + r"/" + route + r"/([^/]+)/(?:#\w+)?", url)
    assert match, url
    return match.group(1)


# --- small pieces -----------------------------------------------------------------------------


def test_it_keeps_every_author_when_there_are_few():
    assert short_authors(["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"]) == (
        "Ada Lovelace, Alan Turing, Grace Hopper, Edsger Dijkstra"
    )


def test_it_shortens_a_long_author_list_with_et_al():
    names = ["A One", "B Two", "C Three", "D Four", "E Five"]
    assert short_authors(names) == "A One, B Two, C Three et al."


def test_it_reads_authors_stored_as_objects():
    assert author_names([{"name": "Ada  Lovelace"}, {"name": ""}, "Alan Turing"]) == ["Ada Lovelace", "Alan Turing"]


def test_an_excerpt_ends_at_a_word_boundary_with_an_ellipsis():
    text = "word " * 200
    cut = excerpt(text, limit=50)
    assert cut.endswith("word…")
    assert len(cut) <= 51


def test_a_short_abstract_is_kept_whole_with_its_whitespace_tidied():
    assert excerpt("  A short\n abstract. ") == "A short abstract."


# --- subject ----------------------------------------------------------------------------------


def test_the_subject_names_the_topics_and_keywords_that_matched():
    subscriber, candidates, _ = make_digest(count=8)

    assert (
        digest_subject(subscriber, candidates) == "8 new papers on implicit neural representations and interpretability"
    )


def test_the_subject_puts_the_most_frequent_subject_first():
    subscriber, candidates, _ = make_digest(count=8)
    candidates[:5] = with_reason(candidates[:5], "matches your keyword 'interpretability'")

    assert subject_topics(subscriber, candidates)[0] == "interpretability"


def test_the_subject_counts_one_paper_in_the_singular():
    subscriber, candidates, _ = make_digest(count=1)

    assert digest_subject(subscriber, candidates) == "1 new paper on implicit neural representations"


def test_a_subject_too_long_for_inboxes_keeps_only_the_first_topic():
    subscriber = make_subscriber(keywords='"a very long keyword phrase that goes on and on and on and on"')
    _, candidates, _ = make_digest(count=2, subscriber=subscriber)
    candidates[1:] = with_reason(
        candidates[1:], "matches your keyword 'a very long keyword phrase that goes on and on and on and on'"
    )

    subject = digest_subject(subscriber, candidates)
    assert len(subject) <= 90
    assert " and " not in subject.removeprefix("2 new papers on ").replace("on and on", "")


# --- context ----------------------------------------------------------------------------------


def test_the_context_holds_each_paper_as_the_email_shows_it():
    subscriber, candidates, delivery = make_digest(count=6)

    context = build_digest_context(subscriber, candidates, 3, delivery)

    first = context["items"][0]
    paper = candidates[0].paper
    assert [item.title for item in context["items"]] == [c.paper.title for c in candidates]
    assert first.url == f"https://arxiv.org/abs/{paper.arxiv_id}"
    assert first.pdf_url == f"https://arxiv.org/pdf/{paper.arxiv_id}"
    assert first.code_url == paper.code_url != ""
    assert first.upvotes == 42
    assert first.categories == ("cs.CV", "cs.LG")
    assert first.reason == "matches your topic Implicit neural representations"
    assert len(first.excerpt) <= 321 and first.excerpt.endswith("…")
    assert context["items"][2].authors == "Shishira R Maiya, Sharath Girish, Max Ehrlich et al."
    assert context["more_count"] == 3
    assert str(context["date"]) == "2026-03-17"


def test_a_sent_digests_feedback_links_share_one_token_naming_it_and_add_the_paper_and_direction():
    subscriber, candidates, delivery = make_digest(count=2)

    items = build_digest_context(subscriber, candidates, 0, delivery)["items"]

    token = items[0].more_url.split("/feedback/", 1)[1].split("/", 1)[0]
    assert read_payload(token, "feedback") == (subscriber, {"digest": delivery.pk})
    assert read_payload(token, "digest") is None
    assert [(item.more_url, item.less_url) for item in items] == [
        (f"{SITE}/feedback/{token}/{c.paper_id}/more/", f"{SITE}/feedback/{token}/{c.paper_id}/less/")
        for c in candidates
    ]


def test_a_preview_without_a_delivery_signs_each_feedback_link_for_its_paper_and_direction():
    subscriber, candidates, _ = make_digest(count=2)

    item = build_digest_context(subscriber, candidates, 0)["items"][1]

    assert read_payload(token_from(item.more_url, "feedback"), "feedback") == (
        subscriber,
        {"p": candidates[1].paper.pk, "d": "more"},
    )
    assert read_payload(token_from(item.less_url, "feedback"), "feedback")[1] == {
        "p": candidates[1].paper.pk,
        "d": "less",
    }
    assert read_payload(token_from(item.less_url, "feedback"), "digest") is None


def test_the_view_in_browser_link_names_the_delivery_and_the_rest_is_on_that_page():
    subscriber, candidates, delivery = make_digest(count=2)

    context = build_digest_context(subscriber, candidates, 4, delivery)

    assert read_payload(token_from(context["view_url"], "digest"), "digest") == (subscriber, {"d": delivery.pk})
    assert context["more_url"] == context["view_url"] + "#more"


def test_a_preview_without_a_delivery_links_the_rest_to_the_paper_list():
    subscriber, candidates, _ = make_digest(count=2)

    context = build_digest_context(subscriber, candidates, 4)

    assert context["view_url"] == ""
    assert context["more_url"] == SITE + reverse("digest:paper_list")


def test_the_date_is_the_subscribers_local_date():
    subscriber, candidates, delivery = make_digest(count=1, subscriber=make_subscriber(timezone="Pacific/Auckland"))
    delivery.scheduled_for = delivery.scheduled_for.replace(hour=20)

    assert str(build_digest_context(subscriber, candidates, 0, delivery)["date"]) == "2026-03-18"


# --- the message ------------------------------------------------------------------------------


def test_the_message_is_multipart_alternative_with_text_and_html():
    subscriber, candidates, delivery = make_digest(count=8)

    email = parsed(build_digest_message(subscriber, candidates, 3, delivery=delivery))

    assert email.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in email.iter_parts()] == ["text/plain", "text/html"]
    assert email["Subject"] == "8 new papers on implicit neural representations and interpretability"


def test_the_message_carries_the_list_and_identity_headers():
    subscriber, candidates, delivery = make_digest(count=2)

    email = parsed(
        build_digest_message(subscriber, candidates, 0, delivery=delivery, message_id="<d-1@paperboy.example.org>")
    )

    assert parseaddr(email["From"]) == ("Paperboy", "digest@paperboy.example.org")
    assert email["To"] == "ada@example.org"
    assert email["Message-ID"] == "<d-1@paperboy.example.org>"
    assert parsedate_to_datetime(email["Date"]).tzinfo is not None
    assert email["MIME-Version"] == "1.0"
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert email["List-Id"] == "Paperboy digest <digest.paperboy.example.org>"
    unsubscribe = re.findall(r"<([^>]+)>", email["List-Unsubscribe"])
    assert unsubscribe[0].startswith(SITE + "/") and unsubscribe[1].startswith("mailto:digest@paperboy.example.org")


def test_every_link_to_our_site_is_absolute_to_site_url():
    subscriber, candidates, delivery = make_digest(count=4)
    text, html = parts(build_digest_message(subscriber, candidates, 2, delivery=delivery))

    hrefs = re.findall(r'href="([^"]+)"', html)
    ours = [h for h in hrefs if not h.startswith(("https://arxiv.org/", "https://github.com/"))]
    assert len(ours) >= 2 * 4 + 4  # feedback pairs, view, more, manage, unsubscribe, home
    assert all(h.startswith(SITE + "/") for h in ours), ours
    text_links = re.findall(r"https?://\S+", text)
    assert all(link.startswith((SITE + "/", "https://arxiv.org/", "https://github.com/")) for link in text_links)
    assert not re.search(r'href="/', html)


def test_both_parts_show_each_paper_and_the_footer_links():
    subscriber, candidates, delivery = make_digest(count=3)
    # The feedback links are signed with the time: the message and the context are made in the
    # same frozen second, so that the link read from one is the link in the other.
    with time_machine.travel(timezone.now(), tick=False):
        text, html = parts(build_digest_message(subscriber, candidates, 5, delivery=delivery))
        item = build_digest_context(subscriber, candidates, 5, delivery)["items"][0]

    for part in (text, html):
        assert candidates[0].paper.title in part
        assert "Dogyun Park, Sihyeon Kim, Sojin Lee, Hyunwoo J. Kim" in part
        assert "matches your topic Implicit neural representations" in part
        assert "Unsubscribe" in part or "Unsubscribe".lower() in part.lower()
        assert "42 upvotes" in part
        assert "5 more papers" in part
    assert item.more_url in text and item.more_url.replace("&", "&amp;") in html
    assert "View in your browser" in html and "in your browser:" in text


def test_the_html_has_its_css_inlined_and_keeps_its_dark_mode_and_narrow_rules():
    subscriber, candidates, delivery = make_digest(count=2)
    _, html = parts(build_digest_message(subscriber, candidates, 0, delivery=delivery))

    assert re.search(r'<td class="card" style="[^"]*background-color: ?#ffffff', html)
    assert "@media (prefers-color-scheme: dark)" in html
    assert "@media (max-width: 480px)" in html
    assert '<meta name="color-scheme" content="light dark">' in html
    assert 'role="presentation"' in html


def test_markup_in_titles_and_authors_is_escaped_in_the_html_and_kept_as_text_in_the_text_part():
    subscriber = make_subscriber()
    paper = make_paper(
        0,
        "<script>alert(1)</script> & friends",
        "An <img src=x onerror=alert(2)> abstract.",
        authors=['<b onmouseover="alert(3)">Eve</b>', "Mallory"],
    )
    delivery = Delivery.objects.create(subscriber=subscriber, period="p", scheduled_for=paper.published)
    candidate = Candidate.objects.create(subscriber=subscriber, paper=paper, score=1, reason="by <i>Eve</i>")
    hold(delivery, [candidate])

    message = build_digest_message(subscriber, as_picks([candidate]), 0, delivery=delivery)
    text, html = parts(message)

    for needle in ("<script>", "<img src=x", "<b onmouseover", "<i>Eve"):
        assert needle not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; friends" in html
    assert "&lt;b onmouseover=" in html and "Eve&lt;/b&gt;" in html
    assert "<script>alert(1)</script> & friends" in text
    assert "&lt;" not in text and "&amp;" not in text
    assert message.subject == "1 new paper picked for you"


def test_a_cached_card_renders_exactly_as_a_fresh_one():
    subscriber, candidates, delivery = make_digest(count=4)
    warm = build_digest_message(subscriber, candidates, 0, delivery=delivery, message_id="<x@y>")
    clear_card_cache()

    cold = build_digest_message(subscriber, candidates, 0, delivery=delivery, message_id="<x@y>")

    assert parts(cold) == parts(warm)


def test_two_subscribers_shown_the_same_papers_share_the_cards_but_not_the_reasons_or_links():
    first, first_picks, first_delivery = make_digest(count=3)
    second = make_subscriber(email="second@example.org")
    second_delivery = Delivery.objects.create(
        subscriber=second, period="2026-03-17", scheduled_for=first_delivery.scheduled_for, paper_count=3
    )
    second_picks = [replace(pick, reason=f"second reason {rank}") for rank, pick in enumerate(first_picks)]

    one = parts(build_digest_message(first, first_picks, 0, delivery=first_delivery))
    two = parts(build_digest_message(second, second_picks, 0, delivery=second_delivery))

    for text, html in (one, two):
        for pick in first_picks:
            assert pick.paper.title in text and html.count(f'href="{paper_card(pick.paper).url}"') == 2
    for pick in first_picks:
        assert pick.reason in one[0] + one[1] and pick.reason not in two[0] + two[1]
    for pick in second_picks:
        assert pick.reason in two[0] and pick.reason in two[1]
    for (text, html), subscriber, delivery in ((one, first, first_delivery), (two, second, second_delivery)):
        tokens = set(re.findall(r"/feedback/([^/\s\"]+)/\d+/(?:more|less)/", text + html))
        assert len(tokens) == 1
        assert read_payload(tokens.pop(), "feedback") == (subscriber, {"digest": delivery.pk})
        assert subscriber.email in text and subscriber.email in html
    assert first.email not in two[0] + two[1]


def test_a_paper_changed_after_its_card_was_cached_shows_the_change():
    subscriber, candidates, delivery = make_digest(count=1)
    build_digest_message(subscriber, candidates, 0, delivery=delivery)
    paper = Paper.objects.get(pk=candidates[0].paper_id)
    paper.upvotes = 99
    paper.title = "A better title"
    paper.save()

    text, html = parts(build_digest_message(subscriber, delivery_papers(delivery)[0], 0, delivery=delivery))

    for part in (text, html):
        assert "A better title" in part and "99 upvotes" in part


def test_building_a_digest_costs_a_fixed_number_of_queries(django_assert_max_num_queries):
    subscriber, candidates, delivery = make_digest(count=8)
    subscriber = type(subscriber).objects.prefetch_related("topics").get(pk=subscriber.pk)

    with django_assert_max_num_queries(0):
        build_digest_message(subscriber, candidates, 0, delivery=delivery)


def test_it_sends_through_the_configured_backend_with_the_connection_given():
    subscriber, candidates, delivery = make_digest(count=2)
    connection = mail.get_connection()

    build_digest_message(subscriber, candidates, 0, delivery=delivery, connection=connection).send()

    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@example.org"]


# --- view in browser ----------------------------------------------------------------------------


def view_path(url: str) -> str:
    return url.removeprefix(SITE)


def test_the_view_in_browser_page_shows_the_digest_and_the_papers_that_did_not_fit(client):
    subscriber, candidates, delivery = make_digest(count=3, more=1)
    waiting = Candidate.objects.create(
        subscriber=subscriber,
        paper=make_paper(9, "A paper that did not fit", "x"),
        score=0.1,
        reason="similar to your interest",
    )
    hold(delivery, [waiting])
    context = build_digest_context(subscriber, candidates, 1, delivery)

    response = client.get(view_path(context["view_url"]))

    text = response.content.decode()
    assert response.status_code == 200
    assert response.headers["X-Robots-Tag"] == "noindex"
    assert "<h1>3 new papers on implicit neural representations</h1>" in text
    for candidate in candidates:
        assert candidate.paper.title in text
    assert 'id="more"' in text and text.index('id="more"') < text.index(waiting.paper.title)


def test_the_view_in_browser_page_escapes_markup(client):
    subscriber = make_subscriber()
    delivery = Delivery.objects.create(subscriber=subscriber, period="p", scheduled_for=timezone.now())
    paper = make_paper(
        0, "<script>alert(1)</script>", "<img src=x onerror=alert(2)>", authors=["<b onmouseover=alert(3)>Eve</b>"]
    )
    candidate = Candidate.objects.create(subscriber=subscriber, paper=paper, score=1, reason="by <i>Eve</i>")
    hold(delivery, [candidate])

    url = build_digest_context(subscriber, as_picks([candidate]), 0, delivery)["view_url"]
    text = client.get(view_path(url)).content.decode()

    for needle in ("<script>alert", "<img src=x", "<b onmouseover", "<i>Eve"):
        assert needle not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_a_digest_link_only_opens_that_subscribers_own_digest(client):
    subscriber, _, delivery = make_digest(count=1)
    other = make_subscriber(email="mallory@example.org")
    forged = make_token(other, "digest", {"d": delivery.pk})

    assert client.get(reverse("digest:view", args=[forged])).status_code == 404
    assert client.get(reverse("digest:view", args=["not-a-token"])).status_code == 404
    feedback_token = make_token(subscriber, "feedback", {"d": delivery.pk})
    assert client.get(reverse("digest:view", args=[feedback_token])).status_code == 404


def titled(picks, titles):
    """The picks with these titles and a reason that names none of the subscriber's words."""
    return [
        replace(pick, reason="similar to your interest", paper=replace(pick.paper, title=title))
        for pick, title in zip(picks, titles, strict=True)
    ]


def test_subject_keywords_match_titles_as_the_matcher_does():
    subscriber = make_subscriber(keywords="INR, representations")
    subscriber.topics.clear()
    _, candidates, _ = make_digest(count=2, subscriber=subscriber)
    titles = ["INRIA's new benchmark", "A hybrid neural representation"]
    candidates = titled(candidates, titles)

    assert subject_topics(subscriber, candidates) == ["representations"]


def test_an_edited_keyword_or_topic_name_changes_the_next_subject():
    subscriber = make_subscriber(keywords="representations")
    _, candidates, _ = make_digest(count=2, subscriber=subscriber)
    titles = ["A benchmark of hybrid neural representations", "Benchmarks for neural representations"]
    candidates = titled(candidates, titles)
    assert subject_topics(subscriber, candidates) == ["representations"]

    subscriber.keywords = "benchmark"
    assert subject_topics(subscriber, candidates) == ["benchmark"]

    subscriber.topics.update(name="Neural representations")
    assert subject_topics(subscriber, candidates) == ["neural representations", "benchmark"]


def test_topics_fetched_with_a_chunk_give_the_subject_the_subscriber_row_gives():
    subscriber, candidates, _ = make_digest(count=8)
    chunk_subscriber = load_subscribers([subscriber.id])[subscriber.id]

    assert subject_topics(chunk_subscriber, candidates) == subject_topics(subscriber, candidates)
    assert subject_topics(chunk_subscriber, candidates)[0] == "implicit neural representations"


# --- how it looks, in Debian's Chromium ---------------------------------------------------------


@pytest.fixture
def html():
    """A digest's HTML part, built before the browser starts (the ORM and Playwright's loop don't mix)."""
    subscriber, candidates, delivery = make_digest(count=5, more=7)
    return parts(build_digest_message(subscriber, candidates, 7, delivery=delivery))[1]


@pytest.fixture
def show(html, chromium):
    """Opens the digest at a width and colour scheme, with or without its <style> (several clients
    drop it); returns the page and saves a screenshot (docs/ has the walkthrough's: `make screenshots`)."""

    def open_html(width: int, scheme: str, name: str, stylesheet: bool = True):
        page = chromium.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme).new_page()
        page.set_content(html if stylesheet else re.sub(r"<style>.*?</style>", "", html, flags=re.S), wait_until="load")
        screenshot(page, f"digest-email-{name}")
        return page

    return open_html


@pytest.mark.browser
@pytest.mark.parametrize("stylesheet", [True, False], ids=["with-style", "without-style"])
def test_the_html_is_fluid_at_375_px_with_or_without_its_stylesheet(show, stylesheet):
    page = show(375, "light", "375" if stylesheet else "375-without-style", stylesheet=stylesheet)

    assert page.evaluate("document.querySelectorAll('style').length") == (1 if stylesheet else 0)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.locator("td.card").first.bounding_box()["width"] >= 320


@pytest.mark.browser
def test_without_its_stylesheet_the_column_still_stops_at_640_px(show):
    page = show(1280, "light", "wide-without-style", stylesheet=False)

    assert 600 <= page.locator("table.container").bounding_box()["width"] <= 640


@pytest.mark.browser
def test_the_html_fits_a_phone_screen_without_sideways_scrolling(show):
    page = show(360, "light", "narrow")

    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    card = page.locator("td.card").first.bounding_box()
    assert card["width"] >= 300


@pytest.mark.browser
def test_the_html_keeps_a_readable_column_on_a_wide_screen(show):
    page = show(1280, "light", "wide")

    container = page.locator("table.container").bounding_box()
    assert 600 <= container["width"] <= 660
    assert page.evaluate("getComputedStyle(document.querySelector('td.card')).backgroundColor") == "rgb(255, 255, 255)"


@pytest.mark.browser
def test_the_html_turns_dark_in_dark_mode(show):
    page = show(800, "dark", "dark")

    background = page.evaluate("getComputedStyle(document.querySelector('td.card')).backgroundColor")
    title = page.evaluate("getComputedStyle(document.querySelector('.title a')).color")
    assert background == "rgb(26, 31, 41)"
    assert title == "rgb(230, 233, 240)"
