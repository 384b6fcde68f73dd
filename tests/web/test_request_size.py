"""A stranger sends a body larger than any form of ours: it is refused before anything reads it.

Before, CSRF checking read the form of every POST that carried a CSRF cookie (anyone gets one
from the signup page), so Django streamed every file part to a temporary file before a view saw
its token: gigabytes could be sent to any page, and a gunicorn worker held while they arrived."""

import re
import socket
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from digest.models import LikedPaper
from subscribers.models import Subscriber
from subscribers.tokens import make_token
from tests.support.digest_samples import make_subscriber
from tests.support.signup import form
from web.request_size import MAX_REQUEST_BYTES


def csrf_client() -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    html = client.get("/").content.decode()
    return client, re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


@pytest.mark.django_db
def test_an_upload_larger_than_any_form_gets_a_413_and_changes_nothing():
    ada = make_subscriber()
    client, csrf = csrf_client()
    huge = SimpleUploadedFile("library.bib", b"%" * (MAX_REQUEST_BYTES + 1))
    forged = reverse("digest:liked_papers", args=["forged"])
    liked = reverse("digest:liked_papers", args=[make_token(ada, "manage")])

    for path, data in [("/", form(email="new@example.org")), (forged, {}), (liked, {"liked_papers": "2604.26942"})]:
        response = client.post(path, {**data, "csrfmiddlewaretoken": csrf, "bibtex": huge})
        huge.seek(0)
        assert response.status_code == 413, path

    assert Subscriber.objects.count() == 1
    assert LikedPaper.objects.count() == 0


@pytest.mark.django_db
def test_a_bibtex_file_of_the_largest_size_we_read_still_gets_its_answer():
    ada = make_subscriber()
    client, csrf = csrf_client()
    upload = SimpleUploadedFile("library.bib", b"@misc{k, eprint={2604.26942}}\n" + b"%" * 990_000)
    path = reverse("digest:liked_papers", args=[make_token(ada, "manage")])
    assert client.post(path, {"liked_papers": "", "bibtex": upload, "csrfmiddlewaretoken": csrf}).status_code == 302
    assert LikedPaper.objects.get().arxiv_id == "2604.26942"


@pytest.mark.django_db(transaction=True)
def test_a_live_server_answers_413_without_waiting_for_the_body(live_server):
    """A real socket announces a gigabyte and sends none of it: the answer comes at once."""
    host = urlsplit(live_server.url)
    with socket.create_connection((host.hostname, host.port), timeout=10) as conn:
        conn.sendall(
            b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 1000000000\r\nCookie: csrftoken=" + b"a" * 32 + b"\r\n\r\n--x\r\n"
        )
        answer = conn.recv(200)
    assert answer.startswith(b"HTTP/1.1 413")
