"""Scale-out: a matching worker, a sending worker and beat, through a real Redis, send the same
digests as the same functions run in one process (bench/scaleout.py at 50 subscribers)."""

import os
from argparse import Namespace
from datetime import timedelta

import numpy as np
import pytest
import time_machine
from django.db import connection

from bench.digests import populate
from bench.scaleout import Celery, Sink, environment, forget_matches_and_digests, papers_shown, run_both
from config.env import parse_email_url
from digest.matching.runs import build_index, clear_index_cache, run_index, start_match_run
from digest.models import MatchChunk, MatchRun, Paper
from tests.support import ROOT
from tests.support.digest_samples import NOW
from tests.support.servers import ThrowawayRedis, database_url_of

SUBSCRIBERS = 50


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_workers_and_beat_through_redis_send_the_digests_one_process_sends(
    on_postgres, broker_and_cache_on, settings, tmp_path
):
    sink = Sink(tmp_path)
    try:
        with ThrowawayRedis() as redis:
            broker_and_cache_on(redis.url())  # this process pings the workers through it
            for name, value in parse_email_url(f"smtp://127.0.0.1:{sink.port}", ROOT).items():
                setattr(settings, name, value)
            populate(Namespace(seed=3, papers=200, subscribers=SUBSCRIBERS))
            env = environment(database_url_of(connection.settings_dict), redis.url(), sink.port, tmp_path)
            celery = Celery({**os.environ, **env}, tmp_path / "celery.log")
            try:
                outcome = run_both(sink, celery, tmp_path, concurrency=1, tick=1.0, timeout=120)
            finally:
                celery.stop_all()
    finally:
        sink.stop()

    assert outcome.differences == []
    workers, here = outcome.through_workers, outcome.in_process
    assert (workers.match_runs, workers.sent, workers.candidates) == (1, here.sent, here.candidates)
    assert SUBSCRIBERS * 0.8 <= outcome.digests <= SUBSCRIBERS
    assert outcome.papers >= outcome.digests
    # The same matches, scores at most one rounding step apart (the clocks of the two runs).
    assert outcome.candidates == workers.candidates and outcome.largest_score_gap <= 0.0001 + 1e-9


def test_the_papers_of_a_digest_are_read_from_its_text_part_in_order_each_once():
    data = (
        b"Content-Type: text/plain\r\n\r\n1. A https://arxiv.org/abs/2611.00042 (pdf https://arxiv.org/abs/2611.00042)\r\n"
        b"2. B https://arxiv.org/abs/2611.00007\r\n"
        b'Content-Type: text/html\r\n\r\n<a href="https://arxiv.org/abs/2611.09999">C</a>'
    )
    assert papers_shown(data) == ["2611.00042", "2611.00007"]


@pytest.mark.django_db(transaction=True)  # each statement commits, as in the bench: the foreign keys are checked
def test_forgetting_the_workers_matches_forgets_the_markers_of_their_chunks_too():
    run = MatchRun.objects.create(first_paper_id=0, last_paper_id=1, chunks=1, chunks_done=1)
    MatchChunk.objects.create(run=run, first_subscriber_id=1)  # as the matching worker's chunk left it
    forget_matches_and_digests()
    assert not MatchRun.objects.exists() and not MatchChunk.objects.exists()


@pytest.mark.django_db
def test_every_chunk_of_a_run_ranks_as_of_the_runs_start_whichever_worker_takes_it_and_when():
    for n in range(5):
        Paper.objects.create(
            guid=f"p{n}",
            arxiv_id=f"2611.0000{n}",
            title=f"Paper {n}",
            abstract="Attention.",
            published=NOW - timedelta(hours=6 * n),
            upvotes=n,
        )
    with time_machine.travel(NOW, tick=False):
        start_match_run()
        run = MatchRun.objects.get()
        first_worker = run_index(run).trend.copy()
    clear_index_cache()  # another process, its first chunk of the run twelve hours later
    with time_machine.travel(NOW + timedelta(hours=12), tick=False):
        later_worker = run_index(run).trend
        as_of_now = build_index(Paper.objects.all(), Paper.objects.none()).trend

    assert np.array_equal(first_worker, later_worker)
    assert not np.allclose(first_worker, as_of_now), "recency does depend on the clock"
