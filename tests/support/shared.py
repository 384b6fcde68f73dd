"""Where ../shared is: other sites' data the tests read but the repository may not ship (captured
feeds, the feedparser corpus). It stands beside the clone in CI, a level further up from a git
worktree. Missing, a test skips with a message saying so, or fails in CI."""

from pathlib import Path

import pytest

from tests.support import IN_CI, ROOT

_CANDIDATES = [folder / "shared" for folder in [ROOT, *ROOT.parents][:3]]


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def shared_folder(name: str) -> Path:
    for candidate in _CANDIDATES:
        if (candidate / name).is_dir():
            return candidate / name
    _missing(
        f"../shared/{name}/ is missing: the tests read other sites' data from beside the repository "
        f"(looked in {', '.join(str(c) for c in _CANDIDATES)})"
    )


def shared_feed(name: str) -> Path:
    """A captured feed, ../shared/feeds/<name> (feeds/SOURCES.md says where each comes from)."""
    path = shared_folder("feeds") / name
    if not path.is_file():
        _missing(f"../shared/feeds/{name} is missing: {path.parent} does not hold this capture")
    return path
