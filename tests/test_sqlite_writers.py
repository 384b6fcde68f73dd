import fcntl
import multiprocessing
import os
import threading
import time

from config.sqlite_writers import lock_path, turn


def held_elsewhere(path: str) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def hold_for(path: str, seconds: float, ready) -> None:
    with turn(path):
        ready.set()
        time.sleep(seconds)


def test_a_database_file_has_a_lock_file_beside_it_and_one_in_memory_has_none():
    assert lock_path("/srv/paperboy/db.sqlite3") == "/srv/paperboy/db.sqlite3-writers.lock"
    assert [lock_path(name) for name in (":memory:", "file:memorydb_default?mode=memory&cache=shared", "")] == [None] * 3


def test_a_writer_waits_for_the_turn_another_process_holds_and_gets_it_when_released(tmp_path):
    path = str(tmp_path / "db.sqlite3-writers.lock")
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=hold_for, args=(path, 0.3, ready))
    holder.start()
    assert ready.wait(10)
    started = time.monotonic()

    with turn(path):
        waited = time.monotonic() - started

    holder.join(10)
    assert 0.1 < waited < 5  # it waited for the holder, and was let in once the holder let go


def test_turns_are_reentrant_and_released_by_the_outermost(tmp_path):
    path = str(tmp_path / "db.sqlite3-writers.lock")
    with turn(path):
        with turn(path):
            pass
        assert held_elsewhere(path)
    assert not held_elsewhere(path)


def test_threads_of_one_process_take_turns_too(tmp_path):
    path = str(tmp_path / "db.sqlite3-writers.lock")
    inside, overlaps = [], []

    def write():
        with turn(path):
            inside.append(1)
            overlaps.append(len(inside))
            time.sleep(0.01)
            inside.pop()

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [1] * 8

