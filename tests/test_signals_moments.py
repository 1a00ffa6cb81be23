"""SIGTERM / SIGINT at the moments of one real command-line sweep that tests/test_signals.py (Ray's start-up,
training) leaves out: while the analyses run after every training ended, with a second signal during the shutdown
that follows; half-way through the imports before Ray starts, on a folder that holds finished work; during Ray's
shutdown at the end of a finished sweep; during the report. Then the same command finishes the sweep.

Every stop: exit 143 / 130 for the first signal, whatever came after it; one closing line, the last line, that
says what the folder holds ("interrupted by SIGINT: 1 of 1 runs and ... finished; rerun the same command to
resume", never "before the sweep started" once work is saved); no traceback; the results folder's lock released;
no Ray session folder left. The sweep's Ray runs under a private RAY_TMPDIR, so its session folders are told
apart from other Ray clusters on the machine.

One sweep lifecycle, five calls of the command, keeps the cost down. Signals at moments inside the driver come
from a `sitecustomize` in a folder of the test's own (on PYTHONPATH for the driver alone, recognised by its
argv): it sends the driver a real signal from inside the driver at the exact moment (the first import of
`torch.nn`, the entry of `ray.shutdown`), since a signal sent from outside could not hit those windows every time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sweep import cli, lock, stopping
from sweep.errors import Interrupted
from sweep.store import Store
from tests.test_storage_faults import TINY

ROOT = Path(__file__).resolve().parents[1]

# Test instrumentation, run by the driver's interpreter at start-up: SIGNAL_AT = "import:SIGINT" sends the
# signal when `torch.nn` is first looked for (torch half imported: torch._C is loaded, its __init__ still runs);
# "shutdown:SIGINT,SIGTERM" sends each signal, in order, when ray.shutdown is entered with Ray up.
HOOK = '''
import importlib.machinery
import os
import signal
import sys

_SPEC = os.environ.get("SIGNAL_AT", "")
if _SPEC and sys.argv and sys.argv[0].endswith("run_sweep.py"):
    _MOMENT, _NAMES = _SPEC.split(":")
    _SIGNALS = [signal.Signals[name] for name in _NAMES.split(",")]

    def _send():
        for signum in _SIGNALS:
            os.kill(os.getpid(), signum)

    class _Hook:
        def find_spec(self, fullname, path=None, target=None):
            if _MOMENT == "import" and fullname == "torch.nn":
                sys.meta_path.remove(self)
                _send()
                return None
            if _MOMENT != "shutdown" or fullname != "ray":
                return None
            sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            load = spec.loader.exec_module

            def exec_module(module):
                load(module)
                real = module.shutdown

                def shutdown(*args, **kwargs):
                    if module.is_initialized():
                        module.shutdown = real
                        _send()
                    return real(*args, **kwargs)

                module.shutdown = shutdown

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _Hook())
'''


class Sweep:
    """`python run_sweep.py --grid tiny.toml --results <results> --only rewind`, started again and again."""

    def __init__(self, tmp_path: Path, ray_tmp: Path) -> None:
        self.tmp, self.ray_tmp = tmp_path, ray_tmp
        (tmp_path / "tiny.toml").write_text(TINY)
        hooks = tmp_path / "hooks"
        hooks.mkdir()
        (hooks / "sitecustomize.py").write_text(HOOK)
        self.results = tmp_path / "results"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != "SIGNAL_AT"}
        self.env.update(RAY_TMPDIR=str(ray_tmp), PYTHONPATH=f"{hooks}{os.pathsep}{ROOT}", OMP_NUM_THREADS="1")
        self.calls = 0

    def start(self, signal_at: str = "") -> subprocess.Popen:
        self.calls += 1
        self.log = self.tmp / f"call{self.calls}.log"
        with open(self.log, "w") as log:  # a file, not a pipe: nothing blocks on a full pipe while we poll
            return subprocess.Popen(
                [sys.executable, str(ROOT / "run_sweep.py"), "--grid", str(self.tmp / "tiny.toml"), "--results",
                 str(self.results), "--only", "rewind"], cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT,
                env={**self.env, "SIGNAL_AT": signal_at}, text=True)

    def finish(self, proc: subprocess.Popen) -> tuple[int, str]:
        proc.wait(timeout=300)
        return proc.returncode, self.log.read_text()

    def sessions(self) -> list[Path]:
        return list(self.ray_tmp.glob("ray/session_2*"))


def wait_for(what: str, found, timeout: float = 300.0) -> None:  # noqa: ANN001 - a predicate
    deadline = time.monotonic() + timeout
    while not found():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def check_stopped(sweep: Sweep, code: int, output: str, signum: int) -> str:
    """The checks every stop shares; returns the closing line."""
    assert code == 128 + signum, output[-3000:]
    last = output.strip().splitlines()[-1]
    name = signal.Signals(signum).name
    assert last.startswith(f"interrupted by {name}: ") and last.endswith("; rerun the same command to resume"), \
        output[-3000:]
    assert "before the sweep started" not in output, output[-3000:]
    assert sum(line.startswith("interrupted by") for line in output.splitlines()) == 1, output[-3000:]
    assert "Traceback" not in output and "Exception ignored" not in output, output[-3000:]
    assert not (sweep.results / "_lock.json").exists(), "the stopped driver left its lock"
    assert not sweep.sessions(), f"the stopped driver left its Ray session folder: {sweep.sessions()}"
    return last


@pytest.fixture
def handlers():
    """Give pytest its SIGINT / SIGTERM handlers back after a test that sets its own."""
    saved = {s: signal.getsignal(s) for s in stopping.STOP_SIGNALS}
    stopping.reset()
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)
    stopping.reset()


def test_a_signal_while_the_lock_is_taken_raises_after_it_and_leaves_no_lock(tmp_path, monkeypatch, handlers):
    """The command line's handler raises at once; a signal between creating the lock and noting it as held
    would otherwise leave the lock behind."""
    signal.signal(signal.SIGTERM, cli._stop)
    acquire = lock.acquire

    def acquire_then_signal(store: Store) -> dict[str, object]:
        me = acquire(store)
        os.kill(os.getpid(), signal.SIGTERM)  # the lock file exists, `holding` does not know it yet
        return me

    monkeypatch.setattr(lock, "acquire", acquire_then_signal)
    body = []
    with pytest.raises(Interrupted) as info, lock.holding(Store(str(tmp_path / "results"))):
        body.append("ran")
    assert info.value.signum == signal.SIGTERM and body == [] and stopping.first() == signal.SIGTERM
    assert not (tmp_path / "results").exists()  # neither the lock nor the folder the lock made


def test_once_stopping_a_held_step_drops_further_signals(handlers):
    stopping.ignore_further()
    with stopping.held():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
    assert stopping.ignoring() and stopping.first() is None  # nothing raised, nothing noted
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with pytest.raises(Interrupted) as info, stopping.held():  # not stopping: the first is raised after the step
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    assert info.value.signum == signal.SIGTERM and stopping.first() == signal.SIGTERM


def test_the_closing_line_counts_part_trained_runs_and_falls_back_to_the_records(tmp_path, monkeypatch):
    (tmp_path / "tiny.toml").write_text(TINY)
    results = tmp_path / "results"
    args = cli.parse_args(["--grid", str(tmp_path / "tiny.toml"), "--results", str(results), "--only", "rewind"])
    assert cli._finished(args) is None  # no folder: "before the sweep started"
    results.mkdir()
    assert cli._finished(args) == "0 of 1 runs and 0 of 4 analysis tasks finished"
    (run_id,) = [cfg.run_id for cfg in cli._grid(args)[0].runs]
    (results / "checkpoints" / run_id).mkdir(parents=True)
    (results / "checkpoints" / run_id / "progress.json").write_text('{"epoch": 2}')  # epochs saved, not finished
    assert cli._finished(args) == "0 of 1 runs and 0 of 4 analysis tasks finished, 1 more run part-trained"

    def half_imported(*a: object) -> str:  # torch cut off in its import cannot be imported again
        raise SystemError("initialization of _C raised unreported exception")

    monkeypatch.setattr(cli, "_tally", half_imported)
    assert cli._finished(args) == ("the results folder holds 0 finished runs and 0 finished analysis tasks (counted "
                                   "from their done-records), 1 more run part-trained")
    for folder, name in (("_done/runs", f"{run_id}.json"), ("_done/tasks", "a.json"), ("_done/tasks", "b.json")):
        (results / folder).mkdir(parents=True, exist_ok=True)
        (results / folder / name).write_text("{}")
    assert cli._finished(args) == ("the results folder holds 1 finished run and 2 finished analysis tasks (counted "
                                   "from their done-records)")


@pytest.mark.slow
def test_a_stop_signal_at_every_later_moment_is_its_exit_code_one_line_and_nothing_left(tmp_path):
    ray_tmp = Path(tempfile.mkdtemp(prefix="rm", dir="/tmp"))  # short: Ray's socket paths live under it
    sweep = Sweep(tmp_path, ray_tmp)
    try:
        # 1. the training is done (its done-record is written), its analysis tasks queued or running: SIGTERM;
        # a SIGINT then comes during the shutdown that follows and changes nothing
        proc = sweep.start("shutdown:SIGINT")
        wait_for("the run's done-record", lambda: list(sweep.results.glob("_done/runs/*.json")))
        proc.send_signal(signal.SIGTERM)
        code, output = sweep.finish(proc)
        last = check_stopped(sweep, code, output, signal.SIGTERM)
        tasks = len(list(sweep.results.glob("_done/tasks/*.json")))
        assert f": 1 of 1 runs and {tasks} of 4 analysis tasks finished;" in last and tasks < 4, last

        # 2. before Ray starts, torch half imported, on a folder with finished work: the line counts that work
        code, output = sweep.finish(sweep.start("import:SIGINT"))
        last = check_stopped(sweep, code, output, signal.SIGINT)
        # the plan when torch could be imported again, else the done-records counted without it
        assert ": 1 of 1 runs and" in last or ": the results folder holds 1 finished run and" in last, last

        # 3. the analyses finish, then Ray's shutdown at the end of the sweep is hit by SIGINT and, at once, a
        # SIGTERM: the first names the line and the exit status; no report is written
        code, output = sweep.finish(sweep.start("shutdown:SIGINT,SIGTERM"))
        last = check_stopped(sweep, code, output, signal.SIGINT)
        assert ": 1 of 1 runs and 4 of 4 analysis tasks finished;" in last, last
        assert not (sweep.results / "report").exists()

        # 4. during the report (its folder made, its page not yet written): SIGINT
        proc = sweep.start()
        wait_for("the report's folder", lambda: (sweep.results / "report").exists())
        proc.send_signal(signal.SIGINT)
        code, output = sweep.finish(proc)
        last = check_stopped(sweep, code, output, signal.SIGINT)
        assert ": 1 of 1 runs and 4 of 4 analysis tasks finished;" in last, last
        assert "report: " not in output and not (sweep.results / "report" / "index.html").exists(), output[-3000:]

        # 5. the same command once more finishes the sweep: report written, lock released, no session left
        code, output = sweep.finish(sweep.start())
        assert code == 0, output[-3000:]
        assert "1 of 1 runs and 4 of 4 analysis tasks finished" in output
        assert (sweep.results / "report" / "index.html").exists()
        assert not (sweep.results / "_lock.json").exists() and not sweep.sessions()
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
