"""The tests' own helpers: a missing ../shared says so, and fails in CI instead of skipping."""

import pytest

from tests.support import shared


@pytest.fixture
def no_shared_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(shared, "_CANDIDATES", [tmp_path / "shared"])
    return tmp_path / "shared"


def test_a_missing_shared_feeds_folder_fails_in_ci_with_a_clear_message(no_shared_folder, monkeypatch):
    monkeypatch.setattr(shared, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match=r"\.\./shared/feeds/ is missing"):
        shared.shared_feed("arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml")


def test_a_missing_shared_feeds_folder_skips_outside_ci(no_shared_folder, monkeypatch):
    monkeypatch.setattr(shared, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match=r"\.\./shared/feeds/ is missing"):
        shared.shared_feed("arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml")


def test_a_capture_missing_from_the_shared_feeds_fails_in_ci(no_shared_folder, monkeypatch):
    (no_shared_folder / "feeds").mkdir(parents=True)
    monkeypatch.setattr(shared, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match=r"\.\./shared/feeds/gone\.xml is missing"):
        shared.shared_feed("gone.xml")


def test_a_capture_is_read_from_the_shared_feeds(shared_feed):
    path = shared_feed("arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml")
    assert path.parent.name == "feeds" and path.parent.parent.name == "shared"
    assert path.read_bytes().startswith(b"<rss ")
