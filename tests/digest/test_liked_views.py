"""The liked-papers list on the manage page: shown with a remove button per paper, added to by
paste or BibTeX upload, removed from only with the subscriber's own manage link."""

import re

import pytest
from django.core import mail
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import resolve, reverse

from digest.matching.feedback import apply_feedback
from digest.models import LikedPaper, ReaderModel
from digest.papers.liked_papers import add_liked_papers, arxiv_ids_url, fetch_waiting_papers
from subscribers.liked_input import LikedInput
from subscribers.models import Subscriber
from subscribers.tokens import make_token, read_token
from tests.support.digest_samples import make_paper, make_subscriber
from tests.support.feed_server import FeedServer, Route
from tests.support.signup import form

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()


@pytest.fixture
def ada():
    return make_subscriber()


@pytest.fixture
def papers():
    return [make_paper(n, f"Paper number {n} about neural fields", "An abstract.") for n in range(1, 4)]


def manage_path(subscriber) -> str:
    return reverse("subscribers:manage", args=[make_token(subscriber, "manage")])


def manage_page_of(location: str):
    """Whose manage page a redirect goes to (tokens made a second apart differ), and its query."""
    path, _, query = location.partition("#")[0].partition("?")
    match = resolve(path)
    assert match.view_name == "subscribers:manage"
    return read_token(match.kwargs["token"], "manage"), query


def liked_path(subscriber) -> str:
    return reverse("digest:liked_papers", args=[make_token(subscriber, "manage")])


def remove_path(subscriber, row_id: int) -> str:
    return reverse("digest:remove_liked", args=[make_token(subscriber, "manage"), row_id])


def test_the_manage_page_lists_the_liked_papers_with_a_remove_button_each(client, ada, papers):
    add_liked_papers(ada, LikedInput(arxiv_ids=(papers[0].arxiv_id, papers[1].arxiv_id, "2604.99999")))
    html = client.get(manage_path(ada)).content.decode()
    assert "Liked: 3 papers (1 waiting for arXiv)" in html
    assert papers[0].title in html and papers[1].title in html and "2604.99999" in html
    removes = re.findall(r'action="/manage/[^"/]+/liked/(\d+)/remove/"', html)
    assert removes == [str(row.pk) for row in LikedPaper.objects.order_by("id")]


def test_pasted_ids_and_titles_are_saved_and_the_manage_page_says_so(client, ada, papers):
    response = client.post(liked_path(ada), {"liked_papers": f"{papers[0].arxiv_id}v2\n{papers[2].title}"}, follow=True)
    assert manage_page_of(response.redirect_chain[-1][0]) == (ada, "done=liked")
    assert "Your liked papers are saved" in response.content.decode()
    assert [row.paper for row in LikedPaper.objects.order_by("id")] == [papers[0], papers[2]]


def test_garbage_is_answered_with_a_clear_message_and_nothing_is_saved(client, ada):
    response = client.post(liked_path(ada), {"liked_papers": "2410.05254\nnot-an-id\nhttps://evil.example/x"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Line 2, “not-an-id”, is neither an arXiv id nor a paper&#x27;s full title. Nothing was saved." in html
    assert LikedPaper.objects.count() == 0


def test_a_bibtex_file_is_imported(client, ada, papers):
    bibtex = f"@article{{a, title={{{papers[1].title}}}}}\n@misc{{b, eprint={{2604.26942}}, archivePrefix={{arXiv}}}}"
    upload = SimpleUploadedFile("library.bib", bibtex.encode(), content_type="text/x-bibtex")
    assert client.post(liked_path(ada), {"liked_papers": "", "bibtex": upload}).status_code == 302
    assert [(row.paper, row.arxiv_id) for row in LikedPaper.objects.order_by("id")] == [
        (None, "2604.26942"),
        (papers[1], papers[1].arxiv_id),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 40, "not a BibTeX file"),
        (b"% " + b"x" * 1_100_000, "larger than 1 MB"),
        (b"".join(b"@misc{k%d, eprint={2410.%05d}}\n" % (n, n) for n in range(10_000)), "more than 100 papers"),
    ],
)
def test_a_hostile_upload_is_refused_and_nothing_is_saved(client, ada, content, message):
    upload = SimpleUploadedFile("library.bib", content)
    response = client.post(liked_path(ada), {"liked_papers": "2410.05254", "bibtex": upload})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert LikedPaper.objects.count() == 0


def test_an_empty_submission_asks_for_something(client, ada):
    response = client.post(liked_path(ada), {"liked_papers": ""})
    assert response.status_code == 400
    assert "Paste arXiv ids or titles, or choose a BibTeX file." in response.content.decode()


def test_the_remove_button_removes_the_paper_with_the_pages_own_csrf_token(ada, papers):
    add_liked_papers(ada, LikedInput(arxiv_ids=(papers[0].arxiv_id, papers[1].arxiv_id)))
    client = Client(enforce_csrf_checks=True)
    html = client.get(manage_path(ada)).content.decode()
    first = LikedPaper.objects.get(paper=papers[0])
    action = re.search(rf'action="(/manage/[^"/]+/liked/{first.pk}/remove/)"', html).group(1)
    section = html[html.index(f'action="{action}"') :]
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', section).group(1)

    response = client.post(action, {"csrfmiddlewaretoken": csrf})

    assert response.status_code == 302
    assert manage_page_of(response["Location"]) == (ada, "done=unliked")
    assert list(LikedPaper.objects.values_list("paper", flat=True)) == [papers[1].pk]
    assert client.post(action, {}).status_code == 403  # no token, no change


def test_another_subscribers_token_or_a_forged_id_removes_nothing(client, ada, papers):
    bob = make_subscriber("bob@example.org")
    add_liked_papers(ada, LikedInput(arxiv_ids=(papers[0].arxiv_id,)))
    row = LikedPaper.objects.get()

    assert client.post(remove_path(bob, row.pk)).status_code == 404
    assert client.post(remove_path(ada, row.pk + 1)).status_code == 404
    bad = reverse("digest:remove_liked", args=["not-a-token", row.pk])
    assert client.post(bad).status_code == 400
    unsubscribe_token = make_token(ada, "unsubscribe")
    assert client.post(reverse("digest:remove_liked", args=[unsubscribe_token, row.pk])).status_code == 400
    assert client.get(remove_path(ada, row.pk)).status_code == 405
    assert LikedPaper.objects.filter(pk=row.pk).exists()


def test_signup_takes_liked_papers_and_fetches_the_unknown_ones_from_arxiv_once_confirmed(
    client, papers, settings, shared_feed, django_capture_on_commit_callbacks
):
    settings.FEED_HOST_DELAY_SECONDS = 0
    with FeedServer() as arxiv:
        settings.ARXIV_API_URL = arxiv.url("/api/query")
        capture = shared_feed("arxiv_api_atom_2026-04-30_cat-cs.LG-OR-cs.AI_max20_20entries.xml").read_bytes()
        arxiv.routes[arxiv_ids_url(["2604.26942"]).removeprefix(arxiv.base)] = Route(body=capture)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/", form(liked_papers=f"{papers[0].arxiv_id}\nhttps://arxiv.org/abs/2604.26942v1"))
        assert response.status_code == 302
        subscriber = Subscriber.objects.get()
        rows = LikedPaper.objects.filter(subscriber=subscriber).order_by("id")
        assert [(row.arxiv_id, row.state) for row in rows] == [(papers[0].arxiv_id, "known"), ("2604.26942", "waiting")]
        # Anyone can sign up any address: nothing is asked of arXiv until its owner confirms.
        assert arxiv.requests == []
        confirm = re.search(r"https?://[^/]+(/confirm/[^/\s]+/)", mail.outbox[0].body).group(1)
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post(confirm).status_code == 302
        fetch_waiting_papers()
    rows = LikedPaper.objects.filter(subscriber=subscriber).order_by("id")
    assert [(row.arxiv_id, row.state) for row in rows] == [(papers[0].arxiv_id, "known"), ("2604.26942", "known")]
    assert rows[1].paper.title.startswith("Hyper Input Convex Neural Networks")
    assert len(arxiv.requests) == 1


def test_signup_with_garbage_liked_papers_is_refused_and_nothing_is_saved(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/", form(liked_papers="2410.05254\n\x01\x02"))
    assert response.status_code == 400
    assert "Please paste plain text" in response.content.decode()
    assert Subscriber.objects.count() == 0 and LikedPaper.objects.count() == 0


def test_the_data_export_holds_the_liked_papers(client, ada, papers):
    add_liked_papers(ada, LikedInput(arxiv_ids=(papers[0].arxiv_id,)))
    exported = client.get(reverse("subscribers:export", args=[make_token(ada, "manage")])).json()
    assert [(row["arxiv_id"], row["paper__title"], row["state"]) for row in exported["liked_papers"]] == [
        (papers[0].arxiv_id, papers[0].title, "known")
    ]


def test_adding_liked_papers_retrains_the_readers_model_through_the_re_match(
    client, ada, papers, django_capture_on_commit_callbacks
):
    apply_feedback(ada, papers[1], "more")  # one click: too few examples for a model yet
    assert not ReaderModel.objects.filter(subscriber=ada).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(liked_path(ada), {"liked_papers": papers[0].arxiv_id})

    assert response.status_code == 302
    model = ReaderModel.objects.get(subscriber=ada)
    assert (model.positives, model.from_liked, model.from_clicks) == (2, True, True)
