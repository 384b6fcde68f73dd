"""Migrations 0018 and 0019 give the reader's own model sentence-vector weights instead of TF-IDF
terms: every stored model is retrained from the feedback that taught it, and a run then reads it.

Each test migrates the database back to 0017, writes rows through the models of that state,
migrates forward and reads the result through today's code; the database is migrated to the
latest state again whatever happens.
"""

import importlib

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from digest.matching.engine import BatchIndex, PaperDoc, match_many
from digest.matching.reader_model import WEIGHT_BYTES
from digest.matching.runs import subscriber_matcher
from digest.matching.vectors import store_paper_vectors
from digest.models import ReaderModel
from subscribers.models import Subscriber
from tests.support.digest_samples import seed_papers
from tests.support.migrations import apps_at, migrate_through

BEFORE = ("digest", "0017_textvector")
AFTER = ("digest", "0019_retrain_reader_models")
MORE = (1, 5)  # NERV++, HNeRV
LESS = (7,)  # Circuit Component Reuse Across Tasks in Transformer Language Models
VIDEO = {2, 18, 43}  # NIRVANA, Progressive Fourier, Boosting Neural Representations for Videos

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def old_apps():
    """The apps as they were at 0017, on a database migrated back to it."""
    with apps_at(BEFORE) as apps_then:
        yield apps_then


def migrate_to_0019() -> None:
    migrate_through(AFTER)


def test_a_stored_term_model_is_retrained_on_vectors_from_the_clicks_that_taught_it(old_apps):
    Subscriber_ = old_apps.get_model("subscribers", "Subscriber")
    Paper = old_apps.get_model("digest", "Paper")
    MarkedPaper = old_apps.get_model("digest", "MarkedPaper")
    OldModel = old_apps.get_model("digest", "ReaderModel")
    papers = [
        Paper.objects.create(arxiv_id=f"2403.{n:05d}", guid=f"2403.{n:05d}", title=title, abstract=abstract)
        for n, (title, abstract) in enumerate(seed_papers())
    ]
    store_paper_vectors([paper.pk for paper in papers])  # as ingestion stored them
    reader = Subscriber_.objects.create(email="ada@example.org", status="active")
    for n, direction in [*((n, "more") for n in MORE), *((n, "less") for n in LESS)]:
        MarkedPaper.objects.create(subscriber=reader, paper=papers[n], direction=direction)
    OldModel.objects.create(subscriber=reader, terms=["video"], weights=[2.5], bias=-1.0, positives=2, negatives=1)
    # One "more" click left (the other undone by hand in the database): too few to learn from.
    lone = Subscriber_.objects.create(email="bob@example.org", status="active")
    MarkedPaper.objects.create(subscriber=lone, paper=papers[1], direction="more")
    OldModel.objects.create(subscriber=lone, terms=["video"], weights=[2.5], positives=2)

    migrate_to_0019()

    stored = ReaderModel.objects.get(subscriber_id=reader.pk)
    assert len(stored.weights) == WEIGHT_BYTES and (stored.positives, stored.negatives) == (2, 1)
    assert not ReaderModel.objects.filter(subscriber_id=lone.pk).exists()
    loaded = Subscriber.objects.select_related("reader_model").get(pk=reader.pk)
    index = BatchIndex(
        [PaperDoc(id=paper.pk, title=paper.title, abstract=paper.abstract) for paper in papers[:10] + papers[40:50]]
    )
    found = match_many([subscriber_matcher(loaded)], index, keep=index.size)[0]
    assert found.paper_ids and set(found.paper_ids) <= {papers[n].pk for n in VIDEO | set(MORE)}

    # Run again (a migration stopped midway is), it changes nothing.
    importlib.import_module("digest.migrations.0019_retrain_reader_models").retrain_stored_models(apps, None)
    again = ReaderModel.objects.get(subscriber_id=reader.pk)
    assert (bytes(again.weights), again.bias) == (bytes(stored.weights), stored.bias)


def test_the_models_0019_writes_through_today_have_the_columns_they_had_at_0019():
    """0019 writes through today's ReaderModel and TextVector (see its docstring): once a later
    migration changes either, upgrading an old database would fail in 0019, so this fails first."""
    then = MigrationLoader(connection).project_state(AFTER).apps
    for name in ("ReaderModel", "TextVector"):
        today = {field.column for field in apps.get_model("digest", name)._meta.concrete_fields}
        at_0019 = {field.column for field in then.get_model("digest", name)._meta.concrete_fields}
        assert today == at_0019, f"{name} changed after 0019: make 0019 write through the historical models"
