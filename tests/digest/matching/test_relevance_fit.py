"""The stored relevance models are what bench/relevance_fit.py fits: features or fit sets changed
without a refit leave digest/matching/relevance_model.json stale, and this test says so."""

import json
import os
import shlex

import pytest

from bench import relevance_fit
from digest.matching import relevance_model
from tests.support.shared import shared_folder


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="uses no database and encodes every fit and worn set (minutes): the SQLite pass runs it",
)
def test_the_stored_weights_are_reproduced_by_the_command_they_record():
    shared_folder("feeds")  # skips (fails in CI) with a clear message when ../shared is missing
    stored = json.loads(relevance_model.WEIGHTS_FILE.read_text(encoding="utf-8"))
    argv = shlex.split(stored["command"])
    assert argv[:2] == ["python", "bench/relevance_fit.py"]

    refitted = relevance_fit.fitted_models(relevance_fit.parse_arguments(argv[2:]), report=lambda line: None)

    assert refitted == stored


def test_the_recorded_command_names_every_argument_that_changes_the_fit():
    given = ["--background", "300", "--with-worn", "--without", "feeds-i", "--l2", "0.5"]
    command = shlex.split(relevance_fit.command_of(relevance_fit.parse_arguments(given)))
    assert relevance_fit.parse_arguments(command[2:]) == relevance_fit.parse_arguments(given)
    assert "--with-worn" not in relevance_fit.command_of(relevance_fit.parse_arguments(given[:2]))


def test_cross_validation_drops_what_a_minus_term_vetoes_as_a_run_does():
    import numpy as np

    every_row_picked = lambda train: np.ones(int((~train).sum()), dtype=bool)  # noqa: E731
    vetoed = np.array([False, True, False, True])
    predict = relevance_fit.unless(every_row_picked, vetoed)

    held_out_first_two = np.array([False, False, True, True])
    assert predict(held_out_first_two).tolist() == [True, False]
    assert predict(~held_out_first_two).tolist() == [True, False]
