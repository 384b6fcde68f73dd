import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import connection

from digest.delivery.claims import due_retries, is_waiting
from digest.delivery.refusal_alarm import message_refusals, tally
from digest.delivery.sending import retry_delay, send_delivery_chunk
from digest.models import Candidate, Delivery, SendTally
from digest.tasks import retry_deliveries, send_digest_chunk
from mail import smtp_client
from mail.backends import SmtpBackend
from mail.return_path import delivery_id_from
from mail.send_rate import SendRateLimiter
from subscribers.models import Subscriber
from tests.support.digest_samples import NOW, fresh, make_paper, make_subscriber, queued_digest, reason_for
from tests.support.smtp_sink import SmtpSink


def send(*deliveries: Delivery):
    return send_delivery_chunk([d.id for d in deliveries])


def test_it_sends_a_digest_that_parses_with_both_parts_list_headers_and_site_links(sink, papers):
    delivery = queued_digest("ada@example.org", papers)

    result = send(delivery)

    assert (result.sent, sink.count_for("ada@example.org")) == (1, 1)
    message = sink.messages_for("ada@example.org")[0]
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    unsubscribe = message["List-Unsubscribe"]
    assert f"<{django_settings.SITE_URL}/" in unsubscribe and "<mailto:" in unsubscribe
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] and message["Date"]
    assert parseaddr(message["From"])[0] == "Paperboy"
    html = message.get_body(("html",)).get_content()
    links = re.findall(r'href="([^"]+)"', html)
    assert any(link.startswith(django_settings.SITE_URL + "/") for link in links)
    assert papers[0].title.split()[0] in message.get_body(("plain",)).get_content()

    delivery = fresh(delivery)
    assert delivery.status == Delivery.Status.SENT
    assert (delivery.attempts, delivery.paper_count, delivery.more_count) == (1, 3, 0)
    assert message["Message-ID"] == delivery.message_id
    assert message["Subject"] == delivery.subject
    assert delivery.sent_at is not None


def test_it_shows_the_best_max_papers_and_counts_the_rest_which_do_not_roll_over(sink, papers):
    delivery = queued_digest("ada@example.org", papers, count=5, max_papers=2)

    send(delivery)

    delivery = fresh(delivery)
    assert (delivery.paper_count, delivery.more_count) == (2, 3)
    assert delivery.candidates.count() == 5
    text = sink.messages_for("ada@example.org")[0].get_body(("plain",)).get_content()
    assert " ".join(papers[0].title.split()[:3]) in " ".join(text.split())
    assert " ".join(papers[4].title.split()[:4]) not in " ".join(text.split())
    assert not Candidate.objects.filter(is_waiting(), subscriber=delivery.subscriber).exists()


def test_it_sends_a_whole_chunk_over_one_connection(sink, papers):
    deliveries = [queued_digest(f"reader{n}@example.org", papers) for n in range(5)]

    assert send(*deliveries).sent == 5

    assert sink.connections == 1
    assert all(sink.count_for(f"reader{n}@example.org") == 1 for n in range(5))
    assert len({d.message_id for d in Delivery.objects.all()}) == 5


def test_a_digest_takes_one_write_with_the_next_envelope_when_pipelining_and_four_without(sink, papers, monkeypatch):
    writes = []

    class CountingSMTP(smtp_client.SMTP):
        def send(self, s):
            writes.append(s)
            super().send(s)

    monkeypatch.setattr(SmtpBackend, "connection_class", property(lambda backend: CountingSMTP))
    deliveries = [queued_digest(f"reader{n}@example.org", papers) for n in range(5)]

    assert send(*deliveries).sent == 5

    if sink.pipelining:
        # EHLO, the first envelope, then each digest's data with the next envelope, the last
        # digest's data alone, and QUIT.
        assert len(writes) == 2 + 5 + 1
        assert all(w.rstrip().endswith(b"data") for w in writes[2:6]) and b"\r\n.\r\nmail FROM:" in writes[2]
    else:
        assert len(writes) == 1 + 5 * 4 + 1  # EHLO, then MAIL, RCPT, DATA and the data for each, QUIT


def test_it_sends_nothing_twice_when_a_chunk_runs_again(sink, papers):
    deliveries = [queued_digest(f"reader{n}@example.org", papers) for n in range(3)]

    assert send(*deliveries).sent == 3
    again = send(*deliveries)

    assert (again.sent, again.not_claimed) == (0, 3)
    assert sorted(sink.per_recipient().values()) == [1, 1, 1]


def test_it_retries_a_4xx_later_with_the_same_message_id_and_sends_once(sink, papers):
    sink.script("ada@example.org", "451 4.7.1 Greylisted, try again later")
    with time_machine.travel(NOW, tick=False) as clock:
        delivery = queued_digest("ada@example.org", papers)
        assert send(delivery).retrying == 1
        first = fresh(delivery)
        assert first.status == Delivery.Status.QUEUED
        assert "451" in first.last_error
        assert first.next_attempt_at > NOW
        assert sink.count_for("ada@example.org") == 0
        assert due_retries(NOW) == []  # not before its time

        clock.move_to(first.next_attempt_at)
        assert send_delivery_chunk(due_retries(first.next_attempt_at)).sent == 1

    assert sink.count_for("ada@example.org") == 1
    done = fresh(delivery)
    assert (done.status, done.attempts, done.last_error) == (Delivery.Status.SENT, 2, "")
    assert sink.messages_for("ada@example.org")[0]["Message-ID"] == first.message_id == done.message_id


def test_it_fails_a_5xx_at_once_counts_a_bounce_and_never_retries(sink, papers):
    sink.always("gone@example.org", "550 5.1.1 No such user")
    delivery = queued_digest("gone@example.org", papers)

    assert send(delivery).failed == 1

    delivery = fresh(delivery)
    assert delivery.status == Delivery.Status.FAILED
    assert "550" in delivery.last_error
    assert delivery.subscriber.bounce_count == 1
    assert due_retries(NOW + timedelta(days=3)) == []
    assert send(delivery).not_claimed == 1
    assert sink.count_for("gone@example.org") == 0


def test_it_marks_the_subscriber_bounced_after_the_bounce_limit(sink, papers, settings):
    settings.BOUNCE_LIMIT = 2
    sink.always("gone@example.org", "550 5.1.1 No such user")
    delivery = queued_digest("gone@example.org", papers)
    Subscriber.objects.filter(id=delivery.subscriber_id).update(bounce_count=1, next_delivery_at=NOW)

    send(delivery)

    subscriber = Subscriber.objects.get(id=delivery.subscriber_id)
    assert (subscriber.status, subscriber.bounce_count, subscriber.next_delivery_at) == ("bounced", 2, None)


def test_it_reconnects_after_a_disconnect_mid_data_and_retries_that_digest(sink, papers):
    dropped = queued_digest("dropped@example.org", papers)
    fine = queued_digest("fine@example.org", papers)
    sink.script("dropped@example.org", "disconnect")

    result = send(dropped, fine)

    assert (result.retrying, result.sent) == (1, 1)
    assert sink.per_recipient() == {"fine@example.org": 1}
    assert sink.connections == 2
    assert fresh(dropped).status == Delivery.Status.QUEUED

    later = fresh(dropped).next_attempt_at
    with time_machine.travel(later, tick=False):
        assert send(dropped).sent == 1
    assert sink.per_recipient() == {"fine@example.org": 1, "dropped@example.org": 1}


def test_a_digest_whose_verdict_is_read_last_in_the_chunk_is_recorded_too(sink, papers):
    # The verdict on a digest is read once the next one is built: here after a skipped digest,
    # and for the last digest when the chunk ends.
    fine = queued_digest("fine@example.org", papers)
    leaver = queued_digest("leaver@example.org", papers)
    dropped = queued_digest("dropped@example.org", papers)
    Subscriber.objects.filter(id=leaver.subscriber_id).update(status=Subscriber.Status.UNSUBSCRIBED)
    sink.script("dropped@example.org", "disconnect")

    result = send(fine, leaver, dropped)

    assert (result.sent, result.inactive, result.retrying) == (1, 1, 1)
    assert [fresh(d).status for d in (fine, leaver, dropped)] == ["sent", "skipped", "queued"]
    assert sink.per_recipient() == {"fine@example.org": 1}


def test_it_gives_up_after_the_last_attempt_without_counting_a_bounce(sink, papers, settings):
    settings.SEND_MAX_ATTEMPTS = 2
    sink.script("ada@example.org", "421 4.3.2 Busy", "421 4.3.2 Still busy")
    delivery = queued_digest("ada@example.org", papers)

    assert send(delivery).retrying == 1
    with time_machine.travel(fresh(delivery).next_attempt_at, tick=False):
        assert send(delivery).failed == 1

    delivery = fresh(delivery)
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.last_error.startswith("gave up")
    assert delivery.subscriber.bounce_count == 0


def test_someone_who_unsubscribed_after_queueing_gets_nothing(sink, papers):
    delivery = queued_digest("leaver@example.org", papers)
    Subscriber.objects.filter(id=delivery.subscriber_id).update(status=Subscriber.Status.UNSUBSCRIBED)

    assert send(delivery).inactive == 1

    assert sink.count_for("leaver@example.org") == 0
    assert fresh(delivery).status == Delivery.Status.SKIPPED


def test_it_skips_an_empty_digest_unless_told_to_send_it(sink, papers, settings):
    quiet = queued_digest("quiet@example.org", papers, count=0)
    assert send(quiet).empty == 1
    assert (fresh(quiet).status, sink.count_for("quiet@example.org")) == (Delivery.Status.SKIPPED, 0)

    settings.SEND_EMPTY_DIGESTS = True
    Delivery.objects.filter(id=quiet.id).update(status=Delivery.Status.QUEUED)
    assert send(quiet).sent == 1
    assert sink.count_for("quiet@example.org") == 1


def test_a_delivery_stuck_in_sending_is_sent_again_after_the_timeout_with_the_same_message_id(sink, papers, settings):
    settings.SENDING_TIMEOUT_SECONDS = 600
    delivery = queued_digest("ada@example.org", papers)
    with time_machine.travel(NOW, tick=False) as clock:
        # A worker claimed it, fixed its content and was killed before the server answered.
        sink.script("ada@example.org", "disconnect")
        send(delivery)
        Delivery.objects.filter(id=delivery.id).update(
            status=Delivery.Status.SENDING, claimed_at=NOW, next_attempt_at=None
        )
        message_id = fresh(delivery).message_id

        clock.shift(timedelta(seconds=599))
        assert due_retries(datetime.now(UTC)) == []
        assert send(delivery).not_claimed == 1

        clock.shift(timedelta(seconds=2))
        assert due_retries(datetime.now(UTC)) == [delivery.id]
        assert send(delivery).sent == 1

    assert sink.messages_for("ada@example.org")[0]["Message-ID"] == message_id
    assert fresh(delivery).attempts == 2


# Per chunk: the claim in one transaction (read the rows, read the subscribers' floors with the
# candidates above them, one update for the claim and the content; a savepoint and its release in
# a test; on PostgreSQL the subscribers' candidate locks before the floors), the subscribers and
# topics, the papers shown; the look at the refusal tally before the claim and the chunk's counts
# added to it after.
PER_CHUNK = 3 + 2 + 2 + 1 + 2 + (connection.vendor == "postgresql")


def test_with_outcomes_recorded_one_by_one_a_digest_costs_a_look_and_an_outcome(
    sink, papers, settings, django_assert_num_queries
):
    settings.SEND_OUTCOME_BATCH = 1
    deliveries = [queued_digest(f"reader{n}@example.org", papers) for n in range(10)]
    with django_assert_num_queries(PER_CHUNK + 10 * 2):
        assert send(*deliveries).sent == 10


def test_batched_a_chunk_looks_at_its_subscribers_once_and_records_at_most_once_per_digest(
    sink, papers, settings, django_assert_max_num_queries
):
    settings.SEND_OUTCOME_BATCH = 10
    deliveries = [queued_digest(f"reader{n}@example.org", papers) for n in range(10)]
    # One look for the ten; the outcomes in one statement, or sooner whenever the worker would
    # wait for the server's answer (how often depends on the sink's speed).
    with django_assert_max_num_queries(PER_CHUNK + 1 + 10) as captured:
        assert send(*deliveries).sent == 10
    looks = [q for q in captured.captured_queries if 'FROM "subscribers_subscriber"' in q["sql"] and "IN" in q["sql"]]
    assert len(looks) == 2  # the claim's load of the subscribers, and the one last look
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}


def recorded_sent(captured) -> int:
    """How many statements recorded digests as sent."""
    updates = [q["sql"] for q in captured.captured_queries if q["sql"].startswith('UPDATE "digest_delivery"')]
    return sum(1 for sql in updates if "'sent'" in sql)


@pytest.mark.parametrize("grace_ms, records", [(0, 10), (2000, 1)])
def test_accepted_digests_are_recorded_before_a_wait_longer_than_the_grace(
    papers, settings, django_assert_max_num_queries, grace_ms, records
):
    settings.SEND_OUTCOME_BATCH, settings.SEND_RECORD_GRACE_MS = 10, grace_ms
    deliveries = [queued_digest(f"reader{n}@example.org", papers) for n in range(10)]
    # Each verdict comes 30 ms after its data: without a grace the worker records what it holds
    # before every wait (the first digest has nothing to record), with one it waits and records
    # the ten at the end of the chunk.
    with SmtpSink(pipelining=True, data_delay=0.03) as sink:
        for name, value in sink.email_settings().items():
            setattr(settings, name, value)
        with django_assert_max_num_queries(PER_CHUNK + 1 + 10) as captured:
            assert send(*deliveries).sent == 10
    assert recorded_sent(captured) == records
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}


@pytest.mark.postgres
def test_async_commit_is_opt_in_and_costs_two_statements_per_chunk(
    sink, papers, settings, django_assert_num_queries, on_postgres
):
    settings.SEND_ASYNC_COMMIT = True
    settings.SEND_OUTCOME_BATCH = 1
    deliveries = [queued_digest(f"fast{n}@example.org", papers) for n in range(10)]
    with django_assert_num_queries(PER_CHUNK + 10 * 2 + 2) as captured:
        assert send(*deliveries).sent == 10
    assert any("synchronous_commit" in query["sql"] for query in captured.captured_queries)


def test_the_tasks_send_a_chunk_and_queue_due_retries(sink, papers, django_capture_on_commit_callbacks):
    delivery = queued_digest("ada@example.org", papers)
    sink.script("ada@example.org", "451 4.7.1 Later")
    assert send_digest_chunk.delay([delivery.id]).get()["retrying"] == 1

    with (
        time_machine.travel(fresh(delivery).next_attempt_at, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert retry_deliveries() == 1
    assert sink.count_for("ada@example.org") == 1


def test_retry_delays_grow_with_jitter_up_to_the_cap(settings):
    settings.SEND_RETRY_BASE_SECONDS, settings.SEND_RETRY_MAX_SECONDS = 60, 3600
    for attempts, ceiling in [(1, 60), (2, 120), (3, 240), (7, 3600), (20, 3600)]:
        delays = {retry_delay(attempts).total_seconds() for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1


@pytest.mark.redis
def test_the_rate_limit_is_shared_by_every_worker_through_redis(redis_url):
    import redis

    workers = [SendRateLimiter(10, redis_url), SendRateLimiter(10, redis_url)]
    started = time.monotonic()
    for n in range(25):
        workers[n % 2].acquire()
    elapsed = time.monotonic() - started
    # 25 messages at 10 per second need three one-second windows, whoever sends them.
    assert elapsed > 1.0
    assert any(key.startswith(b"paperboy:send-rate:") for key in redis.Redis.from_url(redis_url).scan_iter())


def test_without_a_rate_the_limiter_never_waits():
    limiter = SendRateLimiter(0)
    started = time.monotonic()
    assert sum(limiter.acquire() for _ in range(1000)) == 0
    assert time.monotonic() - started < 0.5


class FakeClock:
    def __init__(self, start: float = 1_000_000.25):
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def sends_per_second(limiter: SendRateLimiter, clock: FakeClock, count: int):
    from collections import Counter

    seconds = Counter()
    for _ in range(count):
        limiter.acquire()
        seconds[int(clock.now)] += 1
    return seconds


def test_without_redis_the_rate_is_kept_in_the_process():
    clock = FakeClock()
    limiter = SendRateLimiter(20, clock=clock.time, sleep=clock.sleep)
    assert limiter._redis is None
    assert list(sends_per_second(limiter, clock, 45).values()) == [20, 20, 5]
    assert [round(s, 2) for s in clock.sleeps] == [0.75, 1.0]


@pytest.mark.redis
def test_two_workers_share_one_redis_window(redis_url):
    clock = FakeClock()
    workers = [SendRateLimiter(20, redis_url, clock=clock.time, sleep=clock.sleep) for _ in range(2)]
    seconds = sends_per_second(workers[0], clock, 15)
    seconds += sends_per_second(workers[1], clock, 15)
    assert list(seconds.values()) == [20, 10]


def test_a_rate_below_one_per_second_uses_longer_windows():
    clock = FakeClock(start=1_000_000.0)
    limiter = SendRateLimiter(0.5, clock=clock.time, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    assert clock.now == 1_000_004.0  # one message per two seconds


def run_senddigests(*args: str) -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("senddigests", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def due_with_papers(email: str, papers, count: int = 3, **fields) -> Subscriber:
    subscriber = make_subscriber(email, next_delivery_at=NOW - timedelta(minutes=1), **fields)
    for rank, paper in enumerate(papers[:count]):
        Candidate.objects.create(
            subscriber=subscriber, paper=paper, score=1.0 - rank / 10, reason=reason_for(paper.title)
        )
    return subscriber


@time_machine.travel(NOW, tick=False)
def test_senddigests_sends_what_is_due_and_sums_it_up(sink, papers):
    due_with_papers("ada@example.org", papers)
    due_with_papers("bob@example.org", papers, count=2)
    due_with_papers("quiet@example.org", papers, count=0)
    due_with_papers("gone@example.org", papers)
    sink.always("gone@example.org", "550 5.1.1 No such user")

    out = run_senddigests()

    assert "Sent 2, skipped as empty 1, failed 1" in out
    assert sink.per_recipient() == {"ada@example.org": 1, "bob@example.org": 1}
    assert "No digests due." in run_senddigests()


@time_machine.travel(NOW, tick=False)
def test_senddigests_now_and_email_pick_the_subscribers(sink, papers):
    due_with_papers("ada@example.org", papers)
    due_with_papers("bob@example.org", papers)
    Subscriber.objects.update(next_delivery_at=NOW + timedelta(hours=5))

    assert "No digests due." in run_senddigests()
    assert "Sent 1," in run_senddigests("--now", "--email", "ADA@example.org")
    assert sink.per_recipient() == {"ada@example.org": 1}


@time_machine.travel(NOW, tick=False)
def test_senddigests_dry_run_shows_the_digests_and_changes_nothing(sink, papers):
    ada = due_with_papers("ada@example.org", papers, count=5, max_papers=3)
    due_with_papers("quiet@example.org", papers, count=0)

    out = run_senddigests("--dry-run")

    assert "ada@example.org  2026-11-26  3 papers (+2 more)  3 new papers on" in out
    assert "quiet@example.org  2026-11-26  nothing new: skipped" in out
    assert "would send 1, skip as empty 1" in out
    assert sink.received == []
    assert not Delivery.objects.exists()
    assert Candidate.objects.filter(is_waiting()).count() == 5
    ada.refresh_from_db()
    assert ada.next_delivery_at == NOW - timedelta(minutes=1)


def test_the_sweep_requeues_a_lost_first_attempt_once_per_timeout(papers, settings):
    settings.SENDING_TIMEOUT_SECONDS = 600
    delivery = queued_digest("ada@example.org", papers)
    Delivery.objects.filter(id=delivery.id).update(queued_at=NOW)

    assert due_retries(NOW + timedelta(seconds=599)) == []  # its task may just be waiting in line
    assert due_retries(NOW + timedelta(seconds=601)) == [delivery.id]
    assert due_retries(NOW + timedelta(seconds=900)) == []  # queued again a moment ago
    assert due_retries(NOW + timedelta(seconds=1202)) == [delivery.id]


def test_two_first_attempts_of_one_subscriber_in_a_chunk_send_each_paper_once(sink, papers):
    older = queued_digest("ada@example.org", papers, count=3)
    newer = Delivery.objects.create(subscriber=older.subscriber, period="2026-11-27", scheduled_for=NOW)

    result = send(older, newer)

    # The older digest takes every waiting paper; the newer one finds none left and is skipped.
    assert (result.sent, result.empty) == (1, 1)
    assert fresh(older).candidates.count() == 3
    assert (fresh(older).paper_count, fresh(newer).status) == (3, Delivery.Status.SKIPPED)
    assert sink.count_for("ada@example.org") == 1


def test_a_candidate_matched_after_the_claim_waits_for_the_next_digest(sink, papers):
    delivery = queued_digest("ada@example.org", papers, count=2)
    send(delivery)
    late = Candidate.objects.create(subscriber=delivery.subscriber, paper=papers[5], score=0.99, reason="later")

    assert Candidate.objects.filter(is_waiting(), id=late.id).exists()
    assert late.id not in {c.id for c in fresh(delivery).candidates}
    assert (fresh(delivery).paper_count, fresh(delivery).more_count) == (2, 0)


# --- refused messages are not the reader's bounces (mail/refusals.py) ---------------------------


def test_the_envelope_names_the_digests_own_return_path_and_declares_its_size(sink, papers):
    delivery = queued_digest("ada@example.org", papers)

    send(delivery)

    [received] = sink.received
    assert delivery_id_from(received.mail_from) == delivery.id
    assert received.mail_options == (f"SIZE={len(received.data)}",)
    assert received.message["From"] == django_settings.DEFAULT_FROM_EMAIL


def test_a_message_refused_after_its_data_fails_without_counting_a_bounce(sink, papers, caplog):
    sink.refuse_data("ada@example.org", "554 5.7.1 Message rejected as spam")
    refused = queued_digest("ada@example.org", papers)
    fine = queued_digest("bob@example.org", papers)

    result = send(refused, fine)

    assert (result.refused, result.sent, result.failed) == (1, 1, 0)
    delivery = fresh(refused)
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.last_error.startswith("message refused: SMTPDataError: (554, b'5.7.1 Message rejected as spam')")
    assert delivery.subscriber.bounce_count == 0 and delivery.subscriber.status == "active"
    assert sink.per_recipient() == {"bob@example.org": 1}
    assert (message_refusals().tried, message_refusals().refused) == (2, 1)
    [alarm] = [r for r in caplog.records if getattr(r, "event", "") == "mail.message_refused"]
    assert (alarm.delivery_id, alarm.source, alarm.levelname) == (refused.id, "smtp", "WARNING")


def test_a_server_refusing_every_message_never_marks_anyone_bounced(papers, settings):
    settings.BOUNCE_LIMIT = 1
    with SmtpSink(pipelining=True, data_answer="554 5.7.26 DMARC policy violation") as server:
        for name, value in server.email_settings().items():
            setattr(settings, name, value)
        delivery = queued_digest("ada@example.org", papers)

        assert send(delivery).refused == 1

    assert Subscriber.objects.get(id=delivery.subscriber_id).status == "active"


def test_a_full_mailbox_at_rcpt_is_retried_and_never_counted(sink, papers):
    sink.script("ada@example.org", "552 5.2.2 Mailbox full")
    delivery = queued_digest("ada@example.org", papers)

    assert send(delivery).retrying == 1

    assert fresh(delivery).status == Delivery.Status.QUEUED
    assert fresh(delivery).subscriber.bounce_count == 0


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelining"])
def test_when_most_messages_are_refused_the_chunk_pauses_and_puts_the_rest_back_untried(
    papers, settings, caplog, pipelining
):
    settings.MESSAGE_REFUSAL_PAUSE_SECONDS = 1800
    with time_machine.travel(NOW, tick=False) as clock:
        deliveries = [queued_digest(f"reader{n}@example.org", papers) for n in range(10)]
        later = [queued_digest(f"later{n}@example.org", papers) for n in range(2)]
        with SmtpSink(pipelining=pipelining, data_answer="554 5.7.1 Message refused by content filter") as server:
            for name, value in server.email_settings().items():
                setattr(settings, name, value)

            result = send(*deliveries)
            # A chunk that starts during the pause waits, unclaimed.
            meanwhile = send(*later)

            assert (result.refused, result.paused, result.sent, result.failed) == (5, 5, 0, 0)
            assert server.refused_data == 5 and server.received == []
            statuses = [fresh(d) for d in deliveries]
            assert [d.status for d in statuses] == ["failed"] * 5 + ["queued"] * 5
            assert all(d.attempts == 0 and d.next_attempt_at == NOW + timedelta(seconds=1800) for d in statuses[5:])
            assert all(d.queued_at is None and d.message_id for d in statuses[5:])
            assert (meanwhile.paused, meanwhile.not_claimed, server.connections) == (2, 0, 1)
            assert [(fresh(d).status, fresh(d).attempts) for d in later] == [("queued", 0)] * 2
            assert not Subscriber.objects.filter(bounce_count__gt=0).exists()
            assert (message_refusals().tried, message_refusals().refused) == (5, 5)
            [paused] = [r for r in caplog.records if getattr(r, "event", "") == "send.paused"]
            assert (paused.levelname, paused.requeued, paused.refused) == ("ERROR", 5, 5)

        # The pause ends, the server takes mail again: the sweep brings the untried digests back.
        clock.move_to(NOW + timedelta(seconds=1801))
        with SmtpSink(pipelining=pipelining) as server:
            for name, value in server.email_settings().items():
                setattr(settings, name, value)
            again = send_delivery_chunk(due_retries(NOW + timedelta(seconds=1801)))

    assert (again.sent, again.paused) == (7, 0)
    assert sorted(server.per_recipient()) == sorted(
        [f"reader{n}@example.org" for n in range(5, 10)] + ["later0@example.org", "later1@example.org"]
    )
    assert all(fresh(d).attempts == 1 for d in deliveries[5:])


def test_a_few_refused_messages_in_a_chunk_do_not_pause_it(sink, papers):
    for n in (0, 2, 4, 6, 9):
        sink.refuse_data(f"reader{n}@example.org", "554 5.6.0 Content rejected")
    deliveries = [queued_digest(f"reader{n}@example.org", papers) for n in range(10)]

    result = send(*deliveries)

    # Half of them: 4 of the first 7 (too few to judge a server by), then 5 of 10.
    assert (result.refused, result.sent, result.paused) == (5, 5, 0)


def test_a_digest_over_the_servers_size_limit_is_not_sent_and_fails_as_a_refused_message(papers, settings):
    big = queued_digest("big@example.org", papers, count=8)
    small = queued_digest("small@example.org", papers, count=1)
    with SmtpSink(pipelining=True, size_limit=16_000) as server:
        for name, value in server.email_settings().items():
            setattr(settings, name, value)

        result = send(big, small)

    assert (result.refused, result.sent) == (1, 1)
    assert server.per_recipient() == {"small@example.org": 1} and server.connections == 1
    assert "5.3.4" in fresh(big).last_error and "SIZE limit of 16000" in fresh(big).last_error
    assert fresh(big).subscriber.bounce_count == 0


def test_a_huge_paper_is_left_out_of_a_digest_over_the_size_cap(sink, papers, settings):
    settings.DIGEST_MAX_BYTES = 1_000_000
    huge = make_paper(20, "A paper whose title never ends " + "and on " * 400_000, "Abstract.", upvotes=999)
    delivery = queued_digest("ada@example.org", [huge, *papers], count=4)

    assert send(delivery).sent == 1

    [received] = sink.received
    assert len(received.data) <= 1_000_000
    text = " ".join(received.message.get_body(("plain",)).get_content().split())
    assert "never ends" not in text
    assert all(" ".join(paper.title.split()[:4]) in text for paper in papers[:3])
    assert "And 1 more paper matched your interests" in text
    assert received.message["Subject"].startswith("3 new papers")


def test_a_digest_too_large_even_without_papers_fails_clearly(sink, papers, settings):
    settings.DIGEST_MAX_BYTES = 2_000
    delivery = queued_digest("ada@example.org", papers)

    assert send(delivery).refused == 1

    assert fresh(delivery).last_error.startswith("message refused: DigestTooLarge: the digest is ")
    assert "over DIGEST_MAX_BYTES=2000" in fresh(delivery).last_error
    assert sink.received == [] and fresh(delivery).subscriber.bounce_count == 0


def test_a_local_part_that_is_not_ascii_fails_its_digest_clearly_and_the_chunk_goes_on(sink, papers):
    unsendable = queued_digest("jörg@example.org", papers)
    fine = queued_digest("bob@example.org", papers)

    result = send(unsendable, fine)

    assert (result.failed, result.sent) == (1, 1)
    assert "SMTPUTF8" in fresh(unsendable).last_error
    assert fresh(unsendable).subscriber.bounce_count == 0
    assert sink.per_recipient() == {"bob@example.org": 1} and sink.connections == 1


def test_the_retry_sweep_forgets_refusal_tallies_older_than_a_week(db):
    with time_machine.travel(NOW, tick=False):
        tally(10, 1, now=NOW - timedelta(days=8))
        tally(10, 2, now=NOW - timedelta(days=6))
        retry_deliveries()

    assert list(SendTally.objects.values_list("message_refusals", flat=True)) == [2]
