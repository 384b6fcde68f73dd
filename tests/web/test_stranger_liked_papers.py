"""A stranger against the "papers I liked" list: the signup box, the manage page's paste and
BibTeX upload, the remove button and the arXiv fetch behind them. Each test performs the attack
through the real views (and a real HTTP server standing in for arXiv and for another host) and
shows it change no one's list and reach no host but the arXiv API."""

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from digest.models import LikedPaper
from digest.papers.liked_papers import add_liked_papers, fetch_waiting_papers
from subscribers.liked_input import LikedInput
from subscribers.models import Subscriber
from subscribers.tokens import make_token
from tests.support.digest_samples import make_subscriber
from tests.support.feed_server import FeedServer
from tests.support.signup import form

pytestmark = pytest.mark.django_db

Status = Subscriber.Status
TITLES = "Neural Fields in Visual Computing\nGaussian Splatting for Everyone"


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    cache.clear()
    settings.SIGNUP_RATE_PER_ADDRESS = 100


@pytest.fixture
def elsewhere():
    with FeedServer() as server:
        yield server


def liked_path(subscriber, purpose: str = "manage") -> str:
    return reverse("digest:liked_papers", args=[make_token(subscriber, purpose)])


def stranger_signs_up(email: str, committed, liked: str = TITLES) -> int:
    with committed():
        return Client().post("/", form(email=email, liked_papers=liked)).status_code


def liked_of(subscriber) -> list[tuple[str, str]]:
    return list(LikedPaper.objects.filter(subscriber=subscriber).order_by("id").values_list("arxiv_id", "title"))


@pytest.mark.parametrize("status", [Status.PENDING, Status.ACTIVE, Status.UNSUBSCRIBED])
def test_a_signup_for_a_known_address_adds_nothing_to_its_liked_list(status, committed, arxiv):
    owner = make_subscriber("owner@example.org", status=status)
    add_liked_papers(owner, LikedInput(arxiv_ids=("2604.26942",)))

    assert stranger_signs_up("owner@example.org", committed, liked="2604.00001\n2604.00002\n" + TITLES) == 302

    assert liked_of(owner) == [("2604.26942", "")]
    assert Subscriber.objects.count() == 1


def test_an_unconfirmed_signups_liked_papers_make_no_request_to_arxiv(committed, arxiv):
    """Anyone can sign up any address with 100 titles, each one arXiv search. Before, a signup's
    list was fetched at once, confirmed or not: twenty signups an hour from one IP were 2,000
    requests to arXiv, whose politeness limit every digest's ingestion shares."""
    for n in range(3):
        assert stranger_signs_up(f"nobody{n}@example.org", committed) == 302

    assert LikedPaper.objects.filter(state=LikedPaper.State.WAITING).count() == 6
    assert fetch_waiting_papers().requests == 0
    assert arxiv.requests == []

    # The owner of one address confirms: their list, and only theirs, is fetched.
    confirm = re.search(r"https?://[^/]+(/confirm/[^/\s]+/)", mail.outbox[0].body).group(1)
    with committed():
        assert Client().post(confirm).status_code == 302
    outcome = fetch_waiting_papers()
    assert outcome.requests == 2
    assert {parse_qs(urlsplit(path).query)["search_query"][0] for path, _ in arxiv.requests} == {
        'ti:"Neural Fields in Visual Computing"',
        'ti:"Gaussian Splatting for Everyone"',
    }


def test_no_pasted_id_names_another_host(arxiv, elsewhere):
    ada = make_subscriber()
    other = elsewhere.url("")
    for line in (
        f"{other}/abs/2604.26942",
        f"{other}/arxiv.org/abs/2604.26942",
        "https://arxiv.org.evil.example/abs/2604.26942",
        "https://user@evil.example/arxiv.org/abs/2604.26942",
        "https://arxiv.org/abs/2604.26942?next=http://evil.example/",
        "../../etc/passwd",
        "2604.26942/../../x",
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data/",
    ):
        response = Client().post(liked_path(ada), {"liked_papers": line})
        assert response.status_code == 400, line
        assert "Nothing was saved." in response.content.decode()
    assert liked_of(ada) == []


def test_a_bibtex_link_to_another_host_is_read_as_an_arxiv_id_or_a_title_and_only_arxiv_is_asked(arxiv, elsewhere):
    ada = make_subscriber()
    other = elsewhere.url("")
    bibtex = (
        f"@misc{{a, url={{{other}/arxiv.org/abs/2604.26942}}}}\n"
        f"@misc{{b, eprint={{../../etc/passwd}}, url={{{other}/steal}}, title={{Metadata of the cloud}}}}\n"
        f"@misc{{c, doi={{10.48550/arXiv.2604.26951}}, howpublished={{\\url{{{other}/x}}}}}}\n"
    )
    upload = SimpleUploadedFile("library.bib", bibtex.encode())
    assert Client().post(liked_path(ada), {"liked_papers": "", "bibtex": upload}).status_code == 302
    assert liked_of(ada) == [("2604.26942", ""), ("2604.26951", ""), ("", "Metadata of the cloud")]

    fetch_waiting_papers()

    assert elsewhere.requests == []
    assert arxiv.requests and all(path.startswith("/api/query?") for path, _ in arxiv.requests)


def test_a_quote_in_a_liked_title_cannot_widen_the_arxiv_search(arxiv):
    """Before, `A" OR all:"x` searched `ti:"A" OR all:"x"`: any paper in arXiv, stored by us."""
    ada = make_subscriber()
    title = 'Neural fields" OR all:"anything at all'
    assert Client().post(liked_path(ada), {"liked_papers": title}).status_code == 302

    fetch_waiting_papers()

    [(path, _)] = arxiv.requests
    assert parse_qs(urlsplit(path).query)["search_query"] == ['ti:"Neural fields OR all: anything at all"']


@pytest.mark.parametrize("purpose", ["unsubscribe", "digest", "feedback", "confirm"])
def test_a_link_made_for_another_purpose_adds_nothing(purpose):
    ada = make_subscriber()
    response = Client().post(liked_path(ada, purpose), {"liked_papers": "2604.26942"})
    assert response.status_code == 400
    assert liked_of(ada) == []


def test_a_tampered_manage_token_adds_nothing():
    ada, bob = make_subscriber(), make_subscriber("bob@example.org")
    token = make_token(ada, "manage")
    payload, _, signature = token.rpartition(":")
    forged = f"{make_token(bob, 'manage').rpartition(':')[0]}:{signature}"
    for bad in (forged, token[:-2] + ("AA" if not token.endswith("AA") else "BB"), payload):
        url = reverse("digest:liked_papers", args=[bad])
        assert Client().post(url, {"liked_papers": "2604.26942"}).status_code == 400
    assert LikedPaper.objects.count() == 0


def test_adding_needs_the_pages_csrf_token():
    ada = make_subscriber()
    client = Client(enforce_csrf_checks=True)
    assert client.post(liked_path(ada), {"liked_papers": "2604.26942"}).status_code == 403
    html = client.get(liked_path(ada)).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    response = client.post(liked_path(ada), {"liked_papers": "2604.26942", "csrfmiddlewaretoken": csrf})
    assert response.status_code == 302
    assert liked_of(ada) == [("2604.26942", "")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"@article{k, title={" + b"{" * 499_000 + b"}" * 499_000 + b"}}", "neither an arXiv id nor a title"),
        (b"@article{k, title={" + b"{" * 999_000, "neither an arXiv id nor a title"),
        (b'@article{k, title="' + b"{" * 999_000, "neither an arXiv id nor a title"),
        (b"@a{," * 249_000, "more than 100 papers"),
        (b"@misc{k, eprint={2604.26942}}\n" * 10_000, "more than 100 papers"),
    ],
    ids=["nested-braces", "unclosed-braces", "unclosed-quote", "a-quarter-million-empty-entries", "10000-entries"],
)
def test_a_hostile_bibtex_file_is_refused_whole_in_linear_time(content, message):
    ada = make_subscriber()
    upload = SimpleUploadedFile("library.bib", content)
    started = time.perf_counter()
    response = Client().post(liked_path(ada), {"liked_papers": "", "bibtex": upload})
    elapsed = time.perf_counter() - started
    assert response.status_code == 400
    assert message in response.content.decode()
    assert liked_of(ada) == []
    # Linear: under a second here on a quiet machine; a quadratic reading of 1 MB takes minutes.
    assert elapsed < 10, elapsed


def test_a_title_or_refused_line_with_markup_is_shown_as_text():
    ada = make_subscriber()
    title = '<script>alert("liked")</script> <img src=x onerror=alert(1)> Neural fields'
    assert Client().post(liked_path(ada), {"liked_papers": title}).status_code == 302
    manage = Client().get(reverse("subscribers:manage", args=[make_token(ada, "manage")])).content.decode()
    refused = Client().post(liked_path(ada), {"liked_papers": "https://<script>alert(2)</script>"}).content.decode()

    for html in (manage, refused):
        assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;liked&quot;)&lt;/script&gt;" in manage
    assert "&lt;script&gt;alert(2)" in refused
