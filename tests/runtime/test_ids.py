"""Ids: random bytes from a page read at a time, never handed out twice (threads, fork)."""

from __future__ import annotations

import os
import threading

import pytest

from plinth import ids


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_child_forked_while_a_thread_takes_an_id_can_still_make_ids() -> None:
    # A thread of the parent holds the page's lock at the moment of the fork: the child
    # inherits the lock held by a thread it does not have, and must not wait on it forever.
    taken = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with ids._entropy._lock:
            taken.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    taken.wait(10)
    try:
        pid = os.fork()
        if pid == 0:  # the child: an id within 2 s, else it is stuck
            done = threading.Event()
            out: list[str] = []
            threading.Thread(target=lambda: (out.append(ids.new_id()), done.set())).start()
            os._exit(0 if done.wait(2) and len(out[0]) == 22 else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        t.join()
    assert os.waitstatus_to_exitcode(status) == 0


def test_ids_made_on_many_threads_are_unique() -> None:
    made: list[str] = []

    def many() -> None:
        made.extend(ids.new_id() for _ in range(5000))

    threads = [threading.Thread(target=many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == len(made) == 40000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    ids.new_id()  # the parent has a page with bytes left
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, ids.new_id().encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 64).decode()
    os.waitpid(pid, 0)
    os.close(r)
    assert child != ids.new_id()
