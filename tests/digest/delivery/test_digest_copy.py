"""What a reader meets in a digest: a date and a working link on every card, no empty label or
dangling separator, copy that follows the frequency and the papers' dates, the subject's case."""

import html as html_module
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from digest.delivery.digest_email import build_digest_context, build_digest_message, digest_subject
from digest.models import Candidate, Delivery
from mail.mime import alternative_bytes
from subscribers.models import Subscriber
from tests.support.digest_samples import as_picks, hold, make_digest, make_paper, make_subscriber, with_reason

pytestmark = pytest.mark.django_db

SITE = "https://paperboy.example.org"


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = SITE


def bare_paper_digest(**fields):
    """A digest of one paper with only what `fields` gives it (a seed paper has no link or id)."""
    subscriber = make_subscriber()
    values = {"arxiv_id": None, "url": "", "pdf_url": "", "code_url": "", "authors": [], "categories": []}
    values.update(fields)
    abstract = values.pop("abstract", "Its abstract.")
    paper = make_paper(0, "A seed paper", abstract, primary_category="", **values)
    delivery = Delivery.objects.create(
        subscriber=subscriber, period="p", scheduled_for=datetime(2026, 3, 17, 8, tzinfo=UTC)
    )
    candidate = Candidate.objects.create(subscriber=subscriber, paper=paper, score=1, reason="r")
    hold(delivery, [candidate])
    return subscriber, as_picks([candidate]), delivery, paper


def html_and_text(subscriber, picks, delivery, more=0):
    message = build_digest_message(subscriber, picks, more, delivery=delivery)
    return message.alternatives[0][0], message.body


def test_every_card_shows_its_papers_date():
    subscriber, picks, delivery = make_digest(count=3)

    html, text = html_and_text(subscriber, picks, delivery)

    assert html.count("17 Mar 2026 · ") == 3
    assert text.count("   17 Mar 2026 · ") == 3


def test_a_paper_with_no_link_of_its_own_links_to_its_page_on_the_site(client):
    subscriber, picks, delivery, paper = bare_paper_digest()
    page = SITE + reverse("digest:paper", args=[paper.pk])

    html, text = html_and_text(subscriber, picks, delivery)

    assert f'<a href="{page}"' in html and f"Abstract: {page}" in text
    response = client.get(page.removeprefix(SITE))
    assert response.status_code == 200 and "A seed paper" in response.content.decode()
    assert client.get(reverse("digest:paper", args=[paper.pk + 1])).status_code == 404


def test_a_cached_card_follows_a_changed_site_url(settings):
    subscriber, picks, delivery, paper = bare_paper_digest()
    html_and_text(subscriber, picks, delivery)
    settings.SITE_URL = "https://elsewhere.example.org"

    _, text = html_and_text(subscriber, picks, delivery)

    assert f"Abstract: https://elsewhere.example.org/papers/{paper.pk}/" in text


def test_a_card_with_upvotes_alone_has_no_dangling_separator():
    subscriber, picks, delivery, _ = bare_paper_digest(upvotes=17, published=None)

    html, text = html_and_text(subscriber, picks, delivery)

    assert re.search(r'<p class="meta"[^>]*><span class="upvotes"[^>]*>▲ 17 upvotes</span></p>', html)
    assert "\n   17 upvotes\n" in text


def test_a_card_with_nothing_but_a_title_has_no_empty_label():
    subscriber, picks, delivery, _ = bare_paper_digest(upvotes=0, published=None, abstract="")

    html, text = html_and_text(subscriber, picks, delivery)

    assert 'class="meta"' not in html and 'class="authors"' not in html and 'class="excerpt"' not in html
    card = text.split("1. A seed paper\n", 1)[1]
    assert card.startswith("\n   Abstract: https://")


def test_a_card_shows_the_organisation_and_comments_on_its_meta_line():
    subscriber, picks, delivery, _ = bare_paper_digest(
        upvotes=42, categories=["cs.CV"], organization="University of Oxford", num_comments=3
    )

    html, text = html_and_text(subscriber, picks, delivery)

    meta = "17 Mar 2026 · cs.CV · University of Oxford · 3 comments"
    assert re.search(rf'<p class="meta"[^>]*>{meta} · <span class="upvotes"[^>]*>▲ 42 upvotes</span></p>', html)
    assert f"\n   {meta} · 42 upvotes\n" in text


@pytest.mark.parametrize("fields, meta", [({"organization": "Qwen"}, "Qwen"), ({"num_comments": 1}, "1 comment")])
def test_an_organisation_or_one_comment_alone_has_no_dangling_separator(fields, meta):
    subscriber, picks, delivery, _ = bare_paper_digest(published=None, upvotes=0, **fields)

    html, text = html_and_text(subscriber, picks, delivery)

    assert re.search(rf'<p class="meta"[^>]*>{meta}</p>', html) and f"\n   {meta}\n" in text


def test_a_card_without_the_hugging_face_fields_shows_nothing_of_them():
    subscriber, picks, delivery, _ = bare_paper_digest(upvotes=0, published=None, abstract="", num_comments=0)

    html, text = html_and_text(subscriber, picks, delivery)

    assert 'class="meta"' not in html and "comment" not in text and "comment" not in html


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"upvotes": 3},
        {"categories": ["cs.LG"]},
        {"authors": ["Ada"]},
        {"published": None, "upvotes": 1},
        {"organization": "Oxford"},
        {"published": None, "num_comments": 2},
        {"published": None, "organization": " ", "num_comments": 0},
    ],
)
def test_no_line_of_the_text_part_ends_in_a_bare_label_or_separator(fields):
    subscriber, picks, delivery, _ = bare_paper_digest(**fields)

    _, text = html_and_text(subscriber, picks, delivery, more=2)

    for line in text.splitlines():
        assert not re.search(r"(:|·)\s*$", line), line
        assert not re.match(r"\s*·", line) and "· ·" not in line, line


def test_a_daily_digest_of_recent_papers_says_today():
    subscriber, picks, delivery = make_digest(count=2)

    assert (
        "picked for you from today's trending papers." in build_digest_context(subscriber, picks, 0, delivery)["intro"]
    )


def test_a_weekly_digest_says_this_week_and_never_today():
    subscriber = make_subscriber(frequency=Subscriber.Frequency.WEEKLY)
    subscriber, picks, delivery = make_digest(count=2, subscriber=subscriber)
    delivery.scheduled_for = datetime(2026, 3, 22, 8, tzinfo=UTC)

    html, text = html_and_text(subscriber, picks, delivery)

    for part in (html_module.unescape(html), text):
        assert "from this week's trending papers." in part and "today" not in part
    assert text.startswith("Paperboy weekly digest, Sunday 22 March 2026")


def test_a_digest_of_old_papers_gives_their_dates():
    subscriber, picks, delivery = make_digest(count=2)
    picks[1] = replace(picks[1], paper=replace(picks[1].paper, published=datetime(2026, 1, 5, tzinfo=UTC)))
    delivery.scheduled_for = datetime(2026, 6, 1, 8, tzinfo=UTC)

    intro = build_digest_context(subscriber, picks, 0, delivery)["intro"]

    assert intro.endswith("picked for you from the trending papers of 5 Jan 2026 to 17 Mar 2026.")


@pytest.mark.parametrize(
    ("keywords", "reason", "subject"),
    [
        # The reader's own case.
        ('"Σ-Mem", NeRF', "matches your keyword 'Σ-Mem'", "2 new papers on Σ-Mem"),
        # Equal counts and lengths: by name, not by the set's order, which changes with each
        # process's hash seed (a retry in another worker must build the same subject).
        ("video, graph, audio", "matches your keywords 'video', 'graph', 'audio'", "2 new papers on audio and graph"),
        # A quoted phrase in a reason counts as a keyword.
        ("", "matches your keyword 'neural field'", "2 new papers on neural field"),
        # Nothing names a subject: a plain count.
        ("", "similar to your interest", "2 new papers picked for you"),
    ],
)
def test_the_subject_names_the_readers_keywords(keywords, reason, subject):
    subscriber = make_subscriber(keywords=keywords)
    subscriber.topics.clear()
    _, picks, _ = make_digest(count=2, subscriber=subscriber)

    assert digest_subject(subscriber, with_reason(picks, reason)) == subject


def test_a_topic_name_reads_mid_sentence_but_an_acronym_keeps_its_case():
    subscriber, picks, _ = make_digest(count=1, subscriber=make_subscriber(keywords=""))
    assert digest_subject(subscriber, picks) == "1 new paper on implicit neural representations"

    subscriber.topics.update(name="NeRF and friends")
    subscriber = Subscriber.objects.prefetch_related("topics").get(pk=subscriber.pk)
    picks = with_reason(picks, "matches your topic NeRF and friends")
    assert digest_subject(subscriber, picks) == "1 new paper on NeRF and friends"


def test_the_reason_is_one_quiet_line_with_the_feedback_links():
    subscriber, picks, delivery = make_digest(count=1)

    html, _ = html_and_text(subscriber, picks, delivery)

    reason = re.search(r'<p class="reason" style="([^"]*)">Why: ([^<]*) · <a ', html)
    assert reason and reason.group(2) == "matches your topic Implicit neural representations"
    assert "background" not in reason.group(1)
    assert "Why you are seeing it" not in html


def test_a_typical_digest_takes_the_fast_mime_path():
    # A block tag that joins lines past 998 bytes would send every digest down Django's slow path.
    subscriber, picks, delivery = make_digest(count=8)

    assert alternative_bytes(build_digest_message(subscriber, picks, 3, delivery=delivery)) is not None
