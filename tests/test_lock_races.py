"""Two drivers racing for one stale or damaged lock (sweep.lock.acquire): every race ends with exactly one holder
and one one-line refusal, never two holders and never a traceback.

Each race is two forked processes released together by a barrier; each keeps what it got (the lock, or its
refusal) until both have tried, so a holder cannot release before the other looks. Forked workers live for all
the races (a fork per race would cost more than the races), each race on a fresh results folder.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from sweep import lock
from sweep.errors import UserError
from sweep.store import Store

RACES = 200


def _racer(folders: list[str], start, tried, results) -> None:  # noqa: ANN001 - multiprocessing objects
    """One driver: for each folder, wait for the start, try to take the lock, report, wait until both tried."""
    for index, folder in enumerate(folders):
        start.wait()
        try:
            lock.acquire(Store(folder))
            outcome = ("held", "")
        except UserError as exc:
            outcome = ("refused", str(exc))
        except BaseException:  # noqa: BLE001 - any traceback is the failure this test looks for
            outcome = ("crashed", traceback.format_exc())
        results.put((index, *outcome))
        tried.wait()


def _race(tmp_path: Path, prepare) -> list[list[tuple[str, str]]]:  # noqa: ANN001 - a callable of a Store
    folders = [str(tmp_path / f"r{i}") for i in range(RACES)]
    for folder in folders:
        prepare(Store(folder))
    ctx = mp.get_context("fork")
    start, tried, results = ctx.Barrier(2), ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=_racer, args=(folders, start, tried, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes: list[list[tuple[str, str]]] = [[] for _ in range(RACES)]
    for _ in range(2 * RACES):
        index, kind, text = results.get(timeout=60)
        outcomes[index].append((kind, text))
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    return outcomes


def _check(races: list[list[tuple[str, str]]], tmp_path: Path) -> None:
    assert [len(race) for race in races] == [2] * RACES
    holders = [sum(kind == "held" for kind, _ in race) for race in races]
    crashes = [text for race in races for kind, text in race if kind == "crashed"]
    assert not crashes, crashes[0]
    print(f"holders per race over {RACES} races: {dict(sorted({h: holders.count(h) for h in holders}.items()))}")
    assert holders == [1] * RACES
    for race in races:
        (refusal,) = [text for kind, text in race if kind == "refused"]
        assert "\n" not in refusal and "in use by another driver" in refusal, refusal
    for i in range(RACES):  # the lock left behind is one of the two racers', whole
        holder = json.loads((tmp_path / f"r{i}" / lock.LOCK).read_text())
        assert holder["host"] == socket.gethostname() and holder["pid"] != os.getpid()
        assert not [p for p in (tmp_path / f"r{i}").iterdir() if p.name != lock.LOCK]  # no temporary file left


def test_two_drivers_racing_for_a_damaged_lock_end_with_one_holder_every_time(tmp_path):
    _check(_race(tmp_path, lambda store: store.write_bytes(lock.LOCK, b'{"host": "')), tmp_path)


def test_two_drivers_racing_for_a_dead_drivers_lock_end_with_one_holder_every_time(tmp_path):
    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    stale = json.dumps({"host": socket.gethostname(), "pid": gone, "started": "1", "since": "then"}).encode()
    _check(_race(tmp_path, lambda store: store.write_bytes(lock.LOCK, stale)), tmp_path)


def test_the_command_line_holds_the_lock_while_it_writes_the_report(tmp_path, monkeypatch):
    """`--status` must not say "no sweep running" while the driver writes its report: the report is written with
    the lock held (the engine's own `holding` nests inside the command line's)."""
    from analyses import report
    from sweep import cli, engine
    from sweep.plan import Tally
    from sweep.status import lock_line

    results = tmp_path / "res"
    seen: list[str] = []

    def fake_run_grid(grid, opts, view=None, loaded=None):  # noqa: ANN001, ANN202 - stands in for the engine
        with lock.holding(Store(opts.results)):
            (results / "runs").mkdir(parents=True, exist_ok=True)
        return engine.Summary(tally=Tally(1, 1, 0, 0), trained=1, tasks_run=0, failures=[], interrupted=None)

    def fake_report(root, data_dir="data", problems=None):  # noqa: ANN001, ANN202
        seen.append(lock_line(Store(root)))
        return str(results / "report" / "index.html")

    monkeypatch.setattr(engine, "run_grid", fake_run_grid)
    monkeypatch.setattr(engine, "shutdown_ray", lambda keep_logs=False: None)
    monkeypatch.setattr(report, "write_report", fake_report)
    assert cli.main(["--results", str(results), "--where", "arch=mlp,variant=standard,seed=0"]) == 0
    assert seen and "no sweep running" not in seen[0], seen
    assert not (results / lock.LOCK).exists()  # released when the command ends


@pytest.mark.parametrize("content", [b"", b"[1, 2]", b"\xff\xfe"])
def test_a_damaged_lock_is_taken_over_by_one_call_without_a_traceback(tmp_path, content):
    store = Store(str(tmp_path / "res"))
    store.write_bytes(lock.LOCK, content)
    me = lock.acquire(store)
    assert json.loads(store.read_bytes(lock.LOCK)) == me
