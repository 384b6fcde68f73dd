"""Marked papers on the manage page in Debian's Chromium against a live server: a reader who
clicked "more" and "less" in a digest sees what was learned and undoes one click."""

import pytest
from django.core.cache import cache

from digest.matching.feedback import apply_feedback
from digest.models import MarkedPaper
from subscribers.tokens import make_token
from tests.support.digest_samples import make_paper, make_subscriber, seed_papers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reader_sees_what_their_clicks_taught_and_undoes_one(browser_page, live_server, filesystem_queue):
    # The re-match an undo queues waits in this test's own queue folder: it is not what this test is about.
    cache.clear()
    papers = [make_paper(index, title, abstract) for index, (title, abstract) in enumerate(seed_papers()[:20])]
    ada = make_subscriber(keywords="videos")
    apply_feedback(ada, papers[0], "more")
    apply_feedback(ada, papers[1], "more")
    apply_feedback(ada, papers[2], "less")
    page = browser_page
    page.goto(f"{live_server.url}/manage/{make_token(ada, 'manage')}/")
    marked = page.locator("#marked-papers")
    assert "More like: 2 papers; less of: 1 paper." in marked.inner_text()

    page.click(f'button[aria-label="Undo less of {papers[2].title}"]')

    assert "no longer learns from that click" in page.content()
    assert "More like: 2 papers; less of: 0 papers." in page.locator("#marked-papers").inner_text()
    assert list(MarkedPaper.objects.values_list("direction", flat=True)) == ["more", "more"]
    assert page.problems == []
