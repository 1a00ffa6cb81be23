"""One driver per results folder (sweep.lock): a live holder is refused by name, a dead one's lock taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from sweep import lock
from sweep.errors import UserError
from sweep.store import Store


def test_a_second_driver_is_refused_with_the_holder_named_and_the_lock_goes_with_the_first(tmp_path):
    store = Store(str(tmp_path / "results"))
    with lock.holding(store):
        holder = json.loads(store.read_bytes(lock.LOCK))
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(UserError, match=rf"in use by another driver \(pid {os.getpid()} on host "):
            lock.acquire(store)
    assert not store.exists(lock.LOCK)
    assert not (tmp_path / "results").exists()  # the folder the lock made, empty again, is gone
    with lock.holding(store):  # free again
        (tmp_path / "results" / "kept").write_text("a result")
    assert (tmp_path / "results" / "kept").exists() and not store.exists(lock.LOCK)


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, capsys):
    store = Store(str(tmp_path / "results"))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store.write_bytes(lock.LOCK, json.dumps({"host": socket.gethostname(), "pid": int(gone.stdout),
                                             "started": "1", "since": "then"}).encode())
    with lock.holding(store):
        assert json.loads(store.read_bytes(lock.LOCK))["pid"] == os.getpid()
    assert "taking over the lock of a driver that is gone" in capsys.readouterr().err


def test_a_reused_pid_is_not_mistaken_for_the_holder(tmp_path):
    store = Store(str(tmp_path / "results"))
    store.write_bytes(lock.LOCK, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                             "started": "not when this process started"}).encode())
    with lock.holding(store):
        pass


def test_an_empty_lock_file_is_taken_over(tmp_path):
    store = Store(str(tmp_path / "results"))
    store.write_bytes(lock.LOCK, b"")
    with lock.holding(store):
        assert json.loads(store.read_bytes(lock.LOCK))["pid"] == os.getpid()


def test_a_lock_from_another_host_is_refused_with_how_to_remove_it(tmp_path):
    store = Store(str(tmp_path / "results"))
    store.write_bytes(lock.LOCK, json.dumps({"host": "elsewhere.example", "pid": 1, "started": "1"}).encode())
    with pytest.raises(UserError, match=f"if that driver is gone .*delete {store.path(lock.LOCK)}"):
        lock.acquire(store)
    assert json.loads(store.read_bytes(lock.LOCK))["host"] == "elsewhere.example"
