"""Each web and worker process computes on one BLAS thread: the process pool already fills the cores."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.celery import BLAS_THREAD_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
# Loads the project the way a worker does (`celery -A config`), then numpy, and reports what it got.
PROBE = "import os, config, numpy; print(os.environ['OPENBLAS_NUM_THREADS'], len(os.listdir('/proc/self/task')))"


def run_probe(**variables: str) -> list[str]:
    env = {name: value for name, value in os.environ.items() if name not in BLAS_THREAD_VARIABLES}
    env.update(variables)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_a_process_loading_the_project_starts_no_blas_threads():
    assert run_probe() == ["1", "1"]


def test_a_thread_count_in_the_environment_wins():
    assert run_probe(OPENBLAS_NUM_THREADS="2")[0] == "2"


# The benches that time matching and fit the models: each must load numpy only after the project
# has set BLAS to one thread, or its CPU seconds count OpenBLAS threads a worker never has.
NUMERIC_BENCHES = ("bench.matching", "bench.relevance_fit", "bench.embedding", "bench.match_profile")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
@pytest.mark.parametrize("module", NUMERIC_BENCHES)
def test_a_bench_that_times_numeric_work_starts_no_blas_threads(module):
    env = {name: value for name, value in os.environ.items() if name not in BLAS_THREAD_VARIABLES}
    probe = f"import os, {module}; print(len(os.listdir('/proc/self/task')))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split()[-1] == "1"
