"""The liked-papers section of the manage page in Debian's Chromium against a live server: paste
papers, see them listed, remove one, and be told plainly when the input is garbage."""

import pytest
from django.core.cache import cache

from digest.models import LikedPaper
from subscribers.tokens import make_token
from tests.support.browser import screenshot
from tests.support.digest_samples import make_paper, make_subscriber

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_subscriber_adds_papers_sees_them_listed_and_removes_one(browser_page, live_server, filesystem_queue):
    # The arXiv fetch waits in this test's own queue folder: it is not what this page test is about.
    cache.clear()
    ada = make_subscriber()
    held = [make_paper(n, f"Neural fields, part {n}", "An abstract.") for n in (1, 2)]
    page = browser_page
    page.goto(f"{live_server.url}/manage/{make_token(ada, 'manage')}/")
    assert "Liked: 0 papers" in page.locator("#liked-papers").inner_text()

    page.fill("#id_liked_papers", f"{held[0].arxiv_id}\nhttps://arxiv.org/abs/{held[1].arxiv_id}v3\n2604.99999")
    page.click("text=Add to my liked papers")

    section = page.locator("#liked-papers")
    assert "Your liked papers are saved" in page.content()
    assert "Liked: 3 papers (1 waiting for arXiv)" in section.inner_text()
    screenshot(page, "liked-papers-manage")
    page.click(f'button[aria-label="Remove {held[0].title}"]')
    assert "no longer in your liked list" in page.content()
    assert "Liked: 2 papers" in page.locator("#liked-papers").inner_text()
    assert list(LikedPaper.objects.values_list("arxiv_id", flat=True).order_by("id")) == [
        held[1].arxiv_id,
        "2604.99999",
    ]

    page.fill("#id_liked_papers", "definitely not a paper\x7f")
    page.click("text=Add to my liked papers")
    assert "Nothing was saved." in page.locator("#form-errors").inner_text()
    assert LikedPaper.objects.count() == 2
    assert page.problems == []
