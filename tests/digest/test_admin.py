import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.utils import timezone

from digest.delivery.claims import due_retries
from digest.models import Candidate, Delivery, Feed, MatchRun, Paper, PaperSource
from digest.ops.operations import retry_failed
from subscribers.models import Subscriber, Topic
from tests.support.digest_samples import hold

ROWS = 1000
QUERY_BOUND = 15


def make_paper(guid: str, **fields) -> Paper:
    defaults = {
        "title": f"Paper {guid}",
        "abstract": "An abstract.",
        "authors": ["Ada Lovelace"],
        "categories": ["cs.LG"],
    }
    return Paper.objects.create(guid=guid, **{**defaults, **fields})


@pytest.fixture
def many_rows(db):
    """ROWS of everything the admin lists, made in bulk."""
    feeds = Feed.objects.bulk_create(
        Feed(url=f"https://feeds.example/{i}", name=f"Feed {i}", last_polled_at=timezone.now(), last_new=i)
        for i in range(ROWS)
    )
    papers = Paper.objects.bulk_create(
        Paper(
            guid=f"g{i}",
            arxiv_id=f"2611.{i:05d}",
            title=f"Paper {i}",
            authors=[f"Author {i}"],
            categories=["cs.LG", "cs.AI"],
        )
        for i in range(ROWS)
    )
    PaperSource.objects.bulk_create(PaperSource(paper=p, feed=feeds[i % 3]) for i, p in enumerate(papers))
    PaperSource.objects.bulk_create(PaperSource(paper=p, feed=feeds[3]) for p in papers[:500])
    topics = Topic.objects.bulk_create(Topic(slug=f"t{i}", name=f"Topic {i}", description="d") for i in range(ROWS))
    subscribers = Subscriber.objects.bulk_create(
        Subscriber(email=f"s{i}@example.org", status="active") for i in range(ROWS)
    )
    Subscriber.topics.through.objects.bulk_create(
        Subscriber.topics.through(subscriber=s, topic=topics[i % 10]) for i, s in enumerate(subscribers)
    )
    now = timezone.now()
    deliveries = Delivery.objects.bulk_create(
        Delivery(subscriber=s, period="2026-11-26", scheduled_for=now, status="sent") for s in subscribers
    )
    candidates = Candidate.objects.bulk_create(
        Candidate(subscriber=s, paper=papers[i], score=0.5, reason="keyword") for i, s in enumerate(subscribers)
    )
    for delivery, candidate in zip(deliveries, candidates, strict=True):
        hold(delivery, [candidate])
    MatchRun.objects.bulk_create(MatchRun(papers=i) for i in range(ROWS))


@pytest.mark.parametrize(
    "url",
    [
        "/admin/digest/paper/",
        "/admin/digest/feed/",
        "/admin/digest/matchrun/",
        "/admin/digest/candidate/",
        "/admin/digest/delivery/",
        "/admin/subscribers/topic/",
        "/admin/subscribers/subscriber/",
    ],
)
def test_each_changelist_loads_a_thousand_rows_with_a_bounded_number_of_queries(
    client, staff, many_rows, url, django_assert_max_num_queries
):
    with django_assert_max_num_queries(QUERY_BOUND):
        response = client.get(url)
    assert response.status_code == 200
    assert re.search(
        rf"\b{ROWS} (papers|feeds|match runs|candidates|deliveries|topics|subscribers)\b", response.content.decode()
    )


# --- Papers -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_paper_list_shows_sources_categories_and_upvotes(client, staff):
    arxiv = Feed.objects.create(url="https://rss.arxiv.org/rss/cs.LG", name="arXiv cs.LG")
    hf = Feed.objects.create(url="https://huggingface.co/api/daily_papers", name="HF daily")
    paper = make_paper("a", title="Sparse attention for long inputs", categories=["cs.LG", "cs.CL"], upvotes=42)
    PaperSource.objects.create(paper=paper, feed=arxiv)
    PaperSource.objects.create(paper=paper, feed=hf)
    html = client.get("/admin/digest/paper/").content.decode()
    assert "Sparse attention for long inputs" in html
    assert "arXiv cs.LG, HF daily" in html or "HF daily, arXiv cs.LG" in html
    assert "cs.LG, cs.CL" in html
    assert ">42<" in html


@pytest.mark.parametrize("query", ["diffusion", "denoising score", "Hinton", "2611.01234"])
@pytest.mark.django_db
def test_papers_are_found_by_title_abstract_author_or_arxiv_id(client, staff, query):
    make_paper(
        "hit",
        arxiv_id="2611.01234",
        title="Diffusion in a nutshell",
        abstract="We study denoising score matching.",
        authors=["Geoffrey Hinton"],
    )
    make_paper("miss", arxiv_id="2611.09999", title="Graphs", abstract="Nothing of it.", authors=["Someone Else"])
    html = client.get("/admin/digest/paper/", {"q": query}).content.decode()
    assert "Diffusion in a nutshell" in html
    assert "Paper miss" not in html and ">Graphs<" not in html


@pytest.mark.django_db
def test_papers_filter_by_category_without_matching_a_prefix(client, staff):
    make_paper("lg", title="Learning paper", categories=["cs.LG"])
    make_paper("cl", title="Language paper", categories=["cs.CL", "stat.ML"])
    make_paper("l", title="Odd paper", categories=["cs.L"])
    html = client.get("/admin/digest/paper/").content.decode()
    assert "?category=stat.ML" in html  # offered as a filter choice
    assert "?category=cs.LG" in html
    html = client.get("/admin/digest/paper/", {"category": "cs.L"}).content.decode()
    assert "Odd paper" in html and "Learning paper" not in html
    html = client.get("/admin/digest/paper/", {"category": "stat.ML"}).content.decode()
    assert "Language paper" in html and "Learning paper" not in html


@pytest.mark.django_db
def test_papers_filter_by_source(client, staff):
    arxiv = Feed.objects.create(url="https://rss.arxiv.org/rss/cs.LG", name="arXiv cs.LG")
    hf = Feed.objects.create(url="https://huggingface.co/api/daily_papers", name="HF daily")
    PaperSource.objects.create(paper=make_paper("a", title="From arXiv"), feed=arxiv)
    PaperSource.objects.create(paper=make_paper("b", title="From HF"), feed=hf)
    html = client.get("/admin/digest/paper/", {"feeds__id__exact": hf.pk}).content.decode()
    assert "From HF" in html and "From arXiv" not in html


@pytest.mark.django_db
def test_a_papers_raw_fields_are_read_only(client, staff):
    paper = make_paper("a", title="Original title", authors=[{"name": "Ada Lovelace"}])
    url = f"/admin/digest/paper/{paper.pk}/change/"
    html = client.get(url).content.decode()
    assert "Ada Lovelace" in html
    assert 'name="title"' not in html
    client.post(url, {"title": "Changed", "sources-TOTAL_FORMS": 0, "sources-INITIAL_FORMS": 0})
    paper.refresh_from_db()
    assert paper.title == "Original title"
    assert client.get("/admin/digest/paper/add/").status_code == 403


# --- Feeds --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_feed_list_shows_status_at_a_glance(client, staff):
    Feed.objects.create(
        url="https://a.example/rss", name="Good feed", last_polled_at=timezone.now(), last_new=7, last_updated=2
    )
    Feed.objects.create(
        url="https://b.example/rss", name="Bad feed", last_polled_at=timezone.now(), last_error="HTTP 503 from server"
    )
    Feed.objects.create(url="https://c.example/rss", name="New feed")
    html = client.get("/admin/digest/feed/").content.decode()
    assert "7 new, 2 updated, 0 unchanged, 0 skipped" in html
    assert "HTTP 503 from server" in html
    assert "never polled" in html
    assert 'alt="False"' in html and 'alt="True"' in html and 'alt="None"' in html


@pytest.mark.django_db
def test_poll_now_queues_the_feed_to_a_worker_which_ingests_it(
    client, staff, shared_feed, django_capture_on_commit_callbacks
):
    feed = Feed.objects.create(
        url=shared_feed("arxiv_rss2_2026-04-27_cs.AI_trimmed_3items.xml").as_uri(), enabled=False
    )
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(
            "/admin/digest/feed/", {"action": "poll_now", "_selected_action": [feed.pk]}, follow=True
        )
    assert "Queued 1 feed(s) for polling" in response.content.decode()
    assert len(queued) == 1 and Paper.objects.count() == 0  # nothing ran inside the request
    queued[0]()  # the commit happens: the (eager) worker task polls the feed
    feed.refresh_from_db()
    assert feed.last_success_at is not None and feed.last_error == ""
    assert feed.last_new == 3 and Paper.objects.count() == 3


@pytest.mark.django_db
def test_feeds_can_be_disabled_and_enabled(client, staff):
    feed = Feed.objects.create(url="https://a.example/rss")
    client.post("/admin/digest/feed/", {"action": "disable", "_selected_action": [feed.pk]})
    feed.refresh_from_db()
    assert feed.enabled is False
    client.post("/admin/digest/feed/", {"action": "enable", "_selected_action": [feed.pk]})
    feed.refresh_from_db()
    assert feed.enabled is True


# --- Matching rows, deliveries -----------------------------------------------------------------


@pytest.mark.django_db
def test_candidates_and_match_runs_are_read_only(client, staff):
    run = MatchRun.objects.create(papers=3, chunks=4, chunks_done=4, finished_at=timezone.now())
    subscriber = Subscriber.objects.create(email="a@example.org", status="active")
    candidate = Candidate.objects.create(
        subscriber=subscriber, paper=make_paper("a"), score=0.7, reason="Keyword: NeRF"
    )
    assert "Keyword: NeRF" in client.get("/admin/digest/candidate/").content.decode()
    assert "4/4" in client.get("/admin/digest/matchrun/").content.decode()
    assert client.get(f"/admin/digest/candidate/{candidate.pk}/change/").status_code == 200
    assert client.get(f"/admin/digest/matchrun/{run.pk}/change/").status_code == 200
    assert client.get("/admin/digest/candidate/add/").status_code == 403
    client.post(f"/admin/digest/candidate/{candidate.pk}/change/", {"score": 0.1, "reason": "x"})
    candidate.refresh_from_db()
    assert candidate.score == 0.7


def failed_delivery(email: str = "reader@example.org", status: str = "active") -> Delivery:
    subscriber = Subscriber.objects.create(email=email, status=status)
    delivery = Delivery.objects.create(
        subscriber=subscriber,
        period="2026-11-26",
        scheduled_for=timezone.now(),
        status="failed",
        attempts=1,
        message_id="<fixed@paperboy.test>",
        paper_count=1,
        last_error="SMTPRecipientsRefused: 550 mailbox full",
    )
    candidate = Candidate.objects.create(
        subscriber=subscriber,
        paper=make_paper(f"p-{email}", title="Retried paper"),
        score=0.9,
        reason="Keyword: retry",
    )
    return hold(delivery, [candidate])


@pytest.mark.django_db
def test_deliveries_show_status_attempts_error_and_message_id_and_filter_by_status_and_day(client, staff):
    failed = failed_delivery()
    sent = Delivery.objects.create(
        subscriber=Subscriber.objects.create(email="ok@example.org", status="active"),
        period="2026-11-20",
        scheduled_for=timezone.now() - timedelta(days=6),
        status="sent",
        message_id="<sent@paperboy.test>",
    )
    html = client.get("/admin/digest/delivery/").content.decode()
    assert "SMTPRecipientsRefused: 550 mailbox full" in html and "&lt;fixed@paperboy.test&gt;" in html
    html = client.get("/admin/digest/delivery/", {"status__exact": "failed"}).content.decode()
    assert "reader@example.org" in html and "ok@example.org" not in html
    day = sent.scheduled_for.date().isoformat()
    html = client.get("/admin/digest/delivery/").content.decode()
    assert f"?day={day}" in html  # offered among the last two weeks
    html = client.get("/admin/digest/delivery/", {"day": day}).content.decode()
    assert "ok@example.org" in html and "reader@example.org" not in html
    html = client.get("/admin/digest/delivery/", {"day": "2020-01-01"}).content.decode()
    assert "ok@example.org" not in html and "reader@example.org" not in html
    assert "Retried paper" in client.get(f"/admin/digest/delivery/{failed.pk}/change/").content.decode()


@pytest.mark.django_db
def test_retry_failed_sends_the_same_digest_again_and_leaves_other_deliveries_alone(
    client, staff, django_capture_on_commit_callbacks
):
    failed = failed_delivery()
    sent = Delivery.objects.create(
        subscriber=Subscriber.objects.create(email="ok@example.org", status="active"),
        period="2026-11-26",
        scheduled_for=timezone.now(),
        status="sent",
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/digest/delivery/", {"action": "retry_failed", "_selected_action": [failed.pk, sent.pk]}, follow=True
        )
    html = response.content.decode()
    assert "Queued 1 failed delivery(ies) again" in html and "Left 1 that were not failed" in html
    failed.refresh_from_db()
    assert failed.status == "sent" and failed.attempts == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["reader@example.org"]
    assert mail.outbox[0].extra_headers["Message-ID"] == "<fixed@paperboy.test>"
    assert "Retried paper" in mail.outbox[0].body
    assert Delivery.objects.get(pk=sent.pk).status == "sent"


@pytest.mark.django_db
def test_a_retried_delivery_is_not_queued_again_by_the_retry_sweep_while_its_task_waits():
    failed = failed_delivery()
    Delivery.objects.filter(pk=failed.pk).update(queued_at=timezone.now() - timedelta(days=1))

    assert retry_failed([failed.pk]) == [failed.pk]

    assert due_retries(timezone.now()) == []


# --- Topics -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_topics_list_how_many_active_subscribers_follow_them(client, staff):
    topic = Topic.objects.create(slug="nerf", name="Neural fields", description="NeRFs", keywords="NeRF")
    for i, status in enumerate(["active", "active", "unsubscribed"]):
        Subscriber.objects.create(email=f"{i}@example.org", status=status).topics.add(topic)
    html = client.get("/admin/subscribers/topic/").content.decode()
    assert '<td class="field-followers">2</td>' in html


@pytest.mark.django_db
def test_a_topic_page_previews_the_recent_papers_its_words_would_match(client, staff):
    topic = Topic.objects.create(
        slug="nerf",
        name="Neural fields",
        description="Neural radiance fields for view synthesis",
        keywords='"neural radiance field", NeRF',
    )
    make_paper(
        "hit", title="Faster NeRF training with hash grids", abstract="Neural radiance fields train slowly; we fix it."
    )
    make_paper("other", title="Protein folding with transformers", abstract="Proteins fold; we predict how.")
    html = client.get(f"/admin/subscribers/topic/{topic.pk}/change/").content.decode()
    assert "Papers this topic would match now" in html
    assert "Faster NeRF training with hash grids" in html
    assert "Protein folding with transformers" not in html
    html = client.get(
        f"/admin/subscribers/topic/{topic.pk}/change/",
        {"preview_description": "protein structure", "preview_keywords": "protein"},
    ).content.decode()
    assert "Protein folding with transformers" in html
    assert "Faster NeRF training with hash grids" not in html
    topic.refresh_from_db()
    assert topic.keywords == '"neural radiance field", NeRF'  # trying words saves nothing


# --- Subscribers --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_subscribers_are_searched_by_email_and_filtered_by_status(client, staff):
    Subscriber.objects.create(email="alice@uni.example", status="active")
    Subscriber.objects.create(email="bob@lab.example", status="paused")
    html = client.get("/admin/subscribers/subscriber/", {"q": "alice"}).content.decode()
    assert "alice@uni.example" in html and "bob@lab.example" not in html
    html = client.get("/admin/subscribers/subscriber/", {"status__exact": "paused"}).content.decode()
    assert "bob@lab.example" in html and "alice@uni.example" not in html


@pytest.mark.django_db
def test_the_subscriber_page_shows_preferences_and_saves_them_through_the_service(client, staff):
    topic = Topic.objects.create(slug="nerf", name="Neural fields", description="d")
    subscriber = Subscriber.objects.create(
        email="alice@uni.example",
        status="active",
        keywords="NeRF",
        delivery_hour=8,
        timezone="Europe/Paris",
        next_delivery_at=datetime(2026, 11, 27, 7, tzinfo=UTC),
    )
    url = f"/admin/subscribers/subscriber/{subscriber.pk}/change/"
    html = client.get(url).content.decode()
    assert "NeRF" in html and "Europe/Paris" in html and "Preview next digest" in html and "Last digests" in html
    form = {
        "topics": [topic.pk],
        "keywords": "NeRF, -medical",
        "interests": "view synthesis",
        "categories": ["cs.CV"],
        "category_mode": "boost",
        "authors": "Ada Lovelace\n  Alan   Turing",
        "frequency": "daily",
        "weekday": 0,
        "delivery_hour": 18,
        "timezone": "Europe/Paris",
        "max_papers": 5,
        "_save": "Save",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    subscriber.refresh_from_db()
    assert subscriber.keywords == "NeRF, -medical" and subscriber.max_papers == 5
    assert subscriber.authors == ["Ada Lovelace", "Alan Turing"] and subscriber.categories == ["cs.CV"]
    assert list(subscriber.topics.all()) == [topic]
    assert subscriber.status == "active"
    # the schedule changed, so the service moved the next delivery to 18:00 Paris time
    assert subscriber.next_delivery_at.astimezone(ZoneInfo("Europe/Paris")).hour == 18


@pytest.mark.django_db
def test_pause_resume_and_unsubscribe_go_through_the_services(client, staff):
    active = Subscriber.objects.create(email="a@example.org", status="active", next_delivery_at=timezone.now())
    pending = Subscriber.objects.create(email="p@example.org", status="pending")
    response = client.post(
        "/admin/subscribers/subscriber/", {"action": "pause", "_selected_action": [active.pk, pending.pk]}, follow=True
    )
    assert "1 subscriber(s) paused" in response.content.decode()
    active.refresh_from_db()
    pending.refresh_from_db()
    assert active.status == "paused" and active.next_delivery_at is None
    assert pending.status == "pending"
    client.post("/admin/subscribers/subscriber/", {"action": "resume", "_selected_action": [active.pk, pending.pk]})
    active.refresh_from_db()
    assert active.status == "active" and active.next_delivery_at is not None  # rescheduled by the service
    client.post(
        "/admin/subscribers/subscriber/", {"action": "unsubscribe", "_selected_action": [active.pk, pending.pk]}
    )
    assert set(Subscriber.objects.values_list("status", flat=True)) == {"unsubscribed"}
    assert Subscriber.objects.get(pk=active.pk).unsubscribed_at is not None


@pytest.mark.django_db
def test_resend_confirmation_emails_pending_subscribers_once_an_hour(client, staff, django_capture_on_commit_callbacks):
    pending = Subscriber.objects.create(email="p@example.org", status="pending")
    active = Subscriber.objects.create(email="a@example.org", status="active")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/subscribers/subscriber/",
            {"action": "resend_confirmation", "_selected_action": [pending.pk, active.pk]},
            follow=True,
        )
    assert "1 confirmation email(s) queued" in response.content.decode()
    assert [m.to for m in mail.outbox] == [["p@example.org"]]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/subscribers/subscriber/", {"action": "resend_confirmation", "_selected_action": [pending.pk]}
        )
    assert len(mail.outbox) == 1


def subscriber_with_waiting_papers(
    email: str = "reader@example.org", subscriber: Subscriber | None = None
) -> Subscriber:
    subscriber = subscriber or Subscriber.objects.create(email=email, status="active", max_papers=2, keywords="NeRF")
    for i, title in enumerate(["NeRF in the wild", "Instant NeRF", "NeRF for robots"]):
        Candidate.objects.create(
            subscriber=subscriber,
            paper=make_paper(f"{email}-{i}", title=title, url=f"https://arxiv.org/abs/2611.0000{i}"),
            score=1 - i / 10,
            reason="Keyword: NeRF",
        )
    return subscriber


def nothing_recorded(subscriber: Subscriber) -> bool:
    # A candidate is in a digest only through a delivery's range: no delivery, nothing taken.
    return not Delivery.objects.exists() and Candidate.objects.filter(subscriber=subscriber).count() == 3


@pytest.mark.django_db
def test_send_a_preview_to_me_emails_the_staff_member_and_records_nothing(client, staff):
    subscriber = subscriber_with_waiting_papers()
    response = client.post(
        "/admin/subscribers/subscriber/",
        {"action": "send_preview_to_me", "_selected_action": [subscriber.pk]},
        follow=True,
    )
    assert "Sent 1 preview(s) to ops@example.org" in response.content.decode()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ops@example.org"]
    assert message.subject.startswith("[Preview for reader@example.org]")
    assert "List-Unsubscribe" not in message.extra_headers
    assert "NeRF in the wild" in message.body and "Instant NeRF" in message.body
    assert "NeRF for robots" not in message.body  # beyond max_papers, as in the real digest
    assert nothing_recorded(subscriber)


@pytest.mark.django_db
def test_the_digests_page_shows_each_digest_and_what_it_contained(client, staff, django_assert_max_num_queries):
    subscriber = Subscriber.objects.create(email="reader@example.org", status="active", max_papers=2, keywords="NeRF")
    for day in range(5):
        delivery = Delivery.objects.create(
            subscriber=subscriber,
            period=f"2026-11-{20 + day}",
            scheduled_for=timezone.now() - timedelta(days=5 - day),
            status="sent",
            subject=f"Digest {day}",
            paper_count=1,
            message_id=f"<m{day}@x>",
        )
        old = Candidate.objects.create(
            subscriber=subscriber,
            paper=make_paper(f"old{day}", title=f"Old paper {day}"),
            score=0.5,
            reason="Keyword: NeRF",
        )
        hold(delivery, [old])
    subscriber_with_waiting_papers(subscriber=subscriber)  # matched since: above every digest's range
    with django_assert_max_num_queries(QUERY_BOUND):
        response = client.get(f"/admin/subscribers/subscriber/{subscriber.pk}/digests/")
    html = response.content.decode()
    assert response.status_code == 200
    assert all(f"Old paper {day}" in html for day in range(5))
    assert "Digest 4" in html and "&lt;m4@x&gt;" in html
    assert "3 matched papers waiting" in html


@pytest.mark.django_db
def test_the_preview_shows_the_next_digest_exactly_as_emailed_and_records_and_sends_nothing(client, staff):
    subscriber = subscriber_with_waiting_papers()
    response = client.get(f"/admin/subscribers/subscriber/{subscriber.pk}/preview/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "2 papers and 1 more" in html
    assert "List-Unsubscribe" in html  # the headers the subscriber would get
    assert "NeRF in the wild" in html  # the text part
    frame = client.get(f"/admin/subscribers/subscriber/{subscriber.pk}/preview/html/")
    assert frame.status_code == 200
    assert frame["X-Frame-Options"] == "SAMEORIGIN"
    assert "style-src 'unsafe-inline'" in frame["Content-Security-Policy"]
    assert "script-src" not in frame["Content-Security-Policy"]
    assert b"Instant NeRF" in frame.content and b"<html" in frame.content.lower()
    assert mail.outbox == []
    assert nothing_recorded(subscriber)


@pytest.mark.django_db
def test_the_preview_pages_are_for_staff_only(client):
    subscriber = Subscriber.objects.create(email="a@example.org", status="active")
    for suffix in ("preview/", "preview/html/", "digests/"):
        response = client.get(f"/admin/subscribers/subscriber/{subscriber.pk}/{suffix}")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_the_preview_of_a_subscriber_with_nothing_waiting_says_so(client, staff):
    subscriber = Subscriber.objects.create(email="quiet@example.org", status="paused")
    html = client.get(f"/admin/subscribers/subscriber/{subscriber.pk}/preview/").content.decode()
    assert "0 papers" in html
    assert "They are <strong>paused</strong>, so no digest will actually go out." in html
    assert client.get(f"/admin/subscribers/subscriber/{subscriber.pk}/preview/html/").status_code == 200
    assert "No digest yet." in client.get(f"/admin/subscribers/subscriber/{subscriber.pk}/digests/").content.decode()


@pytest.mark.django_db
def test_the_subscriber_page_checks_preferences_like_the_manage_page(client, staff):
    subscriber = Subscriber.objects.create(
        email="alice@uni.example", status="active", keywords="NeRF", authors=["Ada Lovelace"]
    )
    url = f"/admin/subscribers/subscriber/{subscriber.pk}/change/"
    assert "Ada Lovelace</textarea>" in client.get(url).content.decode()
    form = {
        "keywords": "NeRF",
        "category_mode": "boost",
        "frequency": "daily",
        "weekday": 0,
        "delivery_hour": 8,
        "timezone": "Mars/Olympus_Mons",
        "max_papers": 500,
        "_save": "Save",
    }
    response = client.post(url, form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"timezone", "max_papers"}
    subscriber.refresh_from_db()
    assert subscriber.timezone == "UTC" and subscriber.max_papers == 10


@pytest.mark.django_db
def test_a_preview_needs_an_admin_address_and_a_small_selection(client, staff):
    people = [Subscriber.objects.create(email=f"r{i}@example.org", status="active") for i in range(11)]
    response = client.post(
        "/admin/subscribers/subscriber/",
        {"action": "send_preview_to_me", "_selected_action": [p.pk for p in people]},
        follow=True,
    )
    assert "Select at most 10 subscribers to preview." in response.content.decode()
    staff.email = ""
    staff.save()
    response = client.post(
        "/admin/subscribers/subscriber/",
        {"action": "send_preview_to_me", "_selected_action": [people[0].pk]},
        follow=True,
    )
    assert "Your admin account has no email address" in response.content.decode()
    assert mail.outbox == []
