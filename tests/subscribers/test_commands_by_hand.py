"""The README's walkthrough by commands: `subscribe --confirmed` then `senddigests --now`, with no
worker reading the queue, produce a digest. A command run by hand finishes its own work.

`loadseeds` leaves one task for a worker, as any storing of new papers does: the seed papers'
sentence vectors (docs/decisions.md, "Paper vectors queued where papers are stored"). It is taken
off the queue here, as if no worker ever ran it: a match that needs the vectors encodes them."""

from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command

from digest.models import Candidate
from subscribers import services
from subscribers.models import Subscriber
from tests.support.broker import queued_tasks

# Committed as the command commits outside a test: what waits for the commit runs then.
pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def load_seeds() -> None:
    run("loadseeds")
    [(name, (paper_ids,))] = queued_tasks()
    assert (name, len(paper_ids)) == ("digest.store_paper_vectors", 62)


def test_subscribe_confirmed_then_senddigests_now_sends_a_digest_without_a_worker(real_queue):
    load_seeds()
    assert run("subscribe", "ana@example.org", "--keywords", '"neural field", NeRF', "--confirmed") == (
        "ana@example.org: active\n"
    )
    reader = Subscriber.objects.get(email="ana@example.org")
    titles = [c.paper.title for c in Candidate.objects.filter(subscriber=reader).select_related("paper")]
    assert titles

    assert run("senddigests", "--now").startswith("Sent 1, skipped as empty 0, failed 0")
    assert [message.to for message in mail.outbox] == [["ana@example.org"]]
    assert all(title in mail.outbox[0].body for title in titles)
    assert queued_tasks() == []  # nothing left for a worker


def test_subscribe_without_confirmed_sends_the_opt_in_email_before_it_returns(real_queue):
    load_seeds()
    assert (
        run("subscribe", "bo@example.org", "--topic", "diffusion-models")
        == "bo@example.org: pending (confirmation email sent)\n"
    )
    assert [message.to for message in mail.outbox] == [["bo@example.org"]]
    assert "/confirm/" in mail.outbox[0].body
    assert queued_tasks() == []


def test_outside_a_command_the_same_confirmation_is_queued_for_the_worker(real_queue):
    load_seeds()
    services.subscribe_by_operator("cy@example.org", services.Preferences(keywords="NeRF"), confirmed=True)
    assert [name for name, _ in queued_tasks()] == ["digest.match_recent_papers"]
    assert not Candidate.objects.filter(subscriber__email="cy@example.org").exists()


def test_a_throttled_confirmation_says_so(real_queue):
    load_seeds()
    run("subscribe", "di@example.org", "--keywords", "NeRF")
    assert run("subscribe", "di@example.org", "--keywords", "NeRF") == (
        "di@example.org: pending (no confirmation email sent: one went out within the hour, and its link still works)\n"
    )
    assert len(mail.outbox) == 1
