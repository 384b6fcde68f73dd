"""Where ../shared is (other sites' data the tests read but the repository does not hold): beside
the clone in CI, a level further up from a git worktree. Missing, a test skips, or fails in CI."""

from pathlib import Path

import pytest

from tests.support import IN_CI, ROOT

_CANDIDATES = [folder / "shared" for folder in [ROOT, *ROOT.parents][:3]]


def shared_folder(name: str) -> Path:
    for candidate in _CANDIDATES:
        if (candidate / name).is_dir():
            return candidate / name
    message = f"../shared/{name} not found (looked in {', '.join(str(c) for c in _CANDIDATES)})"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
