"""The status display: counts, trainings in flight by name, what waits (and why), and an ETA from measured rates
(smoothed, a range while uncertain, never nan), on a real pseudo-terminal of 80 and 160 columns and in a log."""

from __future__ import annotations

import fcntl
import io
import math
import os
import pty
import random
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from sweep.eta import BORROW, Estimate, Rate
from sweep.progress import Progress, ProgressView, hms, run_label
from tests.vt import Screen


@pytest.mark.parametrize("seconds, text", [(0, "0:00:00"), (59.4, "0:00:59"), (61, "0:01:01"), (3725, "1:02:05"),
                                           (-3, "0:00:00")])
def test_hms(seconds, text):
    assert hms(seconds) == text


def test_eta_waits_for_a_timing_then_follows_measured_rates():
    p = Progress(runs_total=2, tasks_total=4, slots=2.0, epochs_left={"mlp": 100, "resnet9": 40},
                 tasks_left={"rewind": 4})
    assert p.estimate() is None
    assert "ETA after the first timings" in p.line() and "nan" not in p.line()
    p.epoch_finished("r1", "mlp", 1, 100, 0.1, None)          # the first report of a trial holds its start-up
    assert p.estimate() is None
    p.epoch_finished("r1", "mlp", 2, 100, 0.2, 1.0)
    p.epoch_finished("r2", "resnet9", 1, 40, 0.0, None)
    p.epoch_finished("r2", "resnet9", 2, 40, 0.0, 5.0)
    # left: 98 mlp epochs x 1 s + 38 resnet9 epochs x 5 s, each rate from one timing (the truth within a factor
    # 2), on 2 slots; the low end leaves out the 2 epochs under way (the slowest kind's 5 s each), the high end
    # adds one (the last may run alone); no task is timed yet, so the rewind tasks have no figure: a lower bound
    # only, and the line says why
    assert p.estimate() == Estimate((98 / 2 + 38 * 5 / 2 - 2 * 5) / 2, None, math.inf, False, ("analyses",))
    assert re.search(r"ETA >0:01:07 \(analyses untimed\)", p.line())
    p.task_finished("rewind", 3.0, ok=True)
    work = 98 * 1.0 + 38 * 5.0 + 3 * 3.0
    assert p.estimate() == pytest.approx(Estimate((work / 2 - 2 * 5) / 2, work / 2, work * 2 / 2 + 5, False))
    assert re.search(r"ETA 0:01:0\d-0:05:02\b", p.line())  # a range: three rates of one timing each
    assert p.tasks_done == 1 and p.tasks_left == {"rewind": 3}


def test_an_untimed_architecture_borrows_the_fastest_and_slowest_measured_rates_and_says_so():
    p = Progress(runs_total=2, tasks_total=0, epochs_left={"mlp": 30, "vit": 20})
    p.epoch_finished("r1", "mlp", 2, 4, 0.5, 2.0)
    # mlp: 29 epochs x 2 s within a factor 2; vit: 20 epochs at mlp's rate, within its factor and BORROW's;
    # less the epoch under way at the low end, one more at the high end
    assert p.estimate() == pytest.approx(Estimate(29 * 1 + 20 * 1 / BORROW - 2, 29 * 2 + 20 * 2,
                                                  29 * 4 + 20 * 4 * BORROW + 2, False))
    p.epoch_finished("r2", "vit", 2, 4, 0.5, 6.0)  # now 2 under way, at most 6 s each
    assert p.estimate() == pytest.approx(Estimate(29 + 19 * 3 - 2 * 6, 29 * 2 + 19 * 6, 29 * 4 + 19 * 12 + 6,
                                                  False))


def test_line_shows_counts_trainings_by_name_and_what_waits():
    p = Progress(runs_total=10, tasks_total=66, runs_done=3, tasks_done=12, epochs_left={"mlp": 60})
    p.epoch_finished("digits-mlp-standard-n0.1-s0-abc123", "mlp", 7, 60, 0.4567, None,
                     label="digits/mlp/standard/s0 n0.1")
    p.trainings_waiting, p.tasks_running, p.tasks_queued, p.queue_held = 2, 1, 5, True
    p.task_finished("flip", None, ok=False)
    line = p.line()
    assert line.startswith("runs 3/10 | analyses 12/66 | 1 failed | ETA after the first timings | 0:00:00 elapsed"
                           " | training digits/mlp/standard/s0 n0.1 epoch 7/60 noisy acc 46%")
    assert "2 training(s) waiting to start" in line
    assert "1 analyses running, 5 queued (CPUs kept for trainings)" in line
    p.queue_held = False  # the trainings left keep no CPUs: the tasks wait for the ones the others hold
    assert "1 analyses running, 5 waiting for a free CPU" in p.line() and "queued" not in p.line()
    p.run_finished("digits-mlp-standard-n0.1-s0-abc123", "mlp", 60, ok=True)
    p.trainings_waiting, p.tasks_running, p.tasks_queued = 0, 0, 0
    assert "training" not in p.line() and "analyses running" not in p.line() and p.runs_done == 4


def test_plain_output_prints_a_line_per_change_not_per_epoch():
    stream = io.StringIO()
    view, p = ProgressView(stream, interactive=False), Progress(runs_total=2, tasks_total=1, epochs_left={"mlp": 4})
    view.show(p)
    for epoch in range(1, 4):
        p.epoch_finished("r", "mlp", epoch, 4, 0.0, 0.1)
        view.show(p)
    p.run_finished("r", "mlp", 4, ok=True)
    view.show(p)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("runs 0/2") and lines[1].startswith("runs 1/2")
    assert "\r" not in stream.getvalue()


def test_terminal_output_redraws_in_place_and_prints_lines_above_it():
    stream = io.StringIO()
    view, p = ProgressView(stream, interactive=True), Progress(runs_total=3, tasks_total=0)
    for done in range(3):
        p.runs_done = done
        view.show(p, force=True)
    view.print("FAILED something")
    view.close()
    screen = Screen(1000, 50).feed(stream.getvalue())
    assert screen.lines()[0] == "FAILED something"  # above the display, which was redrawn, not repeated
    headers = [line for line in screen.lines() if line.startswith("runs ")]
    assert len(headers) == 1 and headers[0].startswith("runs 2/3 | ")
    assert stream.getvalue().count("runs ") >= 4  # drawn 3 times, then once more under the printed line


def test_a_resumed_run_leaves_no_epochs_behind_when_it_ends():
    """A run that resumed from epoch 6 of 10 reports 4 epochs; when it ends, none of its 10 is left."""
    p = Progress(runs_total=2, tasks_total=0, epochs_left={"mlp": 20})
    for epoch in range(7, 11):
        p.epoch_finished("resumed", "mlp", epoch, 10, 0.5, 1.0)
    p.run_finished("resumed", "mlp", 10, ok=True)
    assert p.epochs_left == {"mlp": 10} and p.estimate().point == pytest.approx(10.0) and p.estimate().stable
    p.run_finished("failed-at-start", "mlp", 10, ok=False)
    assert p.epochs_left == {"mlp": 0} and p.failed == 1
    p.epochs_left["mlp"] = 10  # a trial Tune ended without a report: when Tune is done, nothing trains any more
    p.epoch_finished("silent", "mlp", 1, 10, 0.5, 1.0)
    p.trainings_waiting = 1
    p.trainings_over()
    assert not p.training and not p.trainings() and p.estimate().high == 0.0 and "waiting" not in p.line()


def test_run_label_names_a_training_by_dataset_arch_variant_and_seed():
    from sweep.config import RunConfig
    from sweep.grids import expand

    plain = RunConfig(dataset="digits", arch="mlp", variant="standard", noise=0.1, seed=3)
    assert run_label(plain) == "digits/mlp/standard/s3 n0.1"
    fold = RunConfig(dataset="digits", arch="mlp", noise=0.2, seed=0, cv_folds=5, cv_fold=1)
    assert run_label(fold) == "digits/mlp/standard/s0 n0.2 fold 2 of 5"
    runs = expand([{"dataset": "digits", "arch": "mlp", "variant": "standard", "noise": 0.1, "seed": 0,
                    "epochs": 2, "subsets": 5, "pack": 2}])
    packs = [c for c in runs if c.subsets]
    assert [run_label(c) for c in packs] == [f"digits/mlp/standard/s0 n0.1 pack {i} of 3" for i in (1, 2, 3)]


def test_a_rate_weights_recent_timings_and_knows_its_spread():
    rate = Rate()
    rate.add(2.0)
    assert (rate.mean, rate.factor()) == (2.0, 2.0)  # one timing: the truth within a factor 2
    for seconds in (2.0, 2.0, 6.0):
        rate.add(seconds)
    # exponentially weighted, newest weight 0.2: 2 + 0.2 x 4; variance 0.8 x (0 + 0.2 x 16)
    assert rate.mean == pytest.approx(2.8) and rate.var == pytest.approx(2.56)
    assert rate.factor() == pytest.approx(1 + 2 * (1.6 / 2.8) / math.sqrt(4))
    steady = Rate()
    for _ in range(20):
        steady.add(1.0)
    assert steady.factor() == pytest.approx(1.05)  # never more certain than FLOOR: machines drift


def simulate(seed: int, slots: int = 2, noise: float = 0.2) -> list[tuple[float, float, Estimate | None,
                                                                          Estimate | None]]:
    """A sweep on `slots` workers with known true unit times (seeded log-normal jitter): 4 MLP runs of 10 epochs
    (1 s), 2 ResNet runs of 5 epochs (4 s), then 6 rewind tasks (3 s) and 6 flip tasks (8 s). Every simulated
    second: (time, true time left, the raw estimate, what the display shows)."""
    rng = random.Random(seed)
    jobs = [("mlp", 10, 1.0)] * 4 + [("resnet9", 5, 4.0)] * 2 + [("rewind", 0, 3.0)] * 6 + [("flip", 0, 8.0)] * 6
    events, free, tasks = [], [0.0] * slots, []  # tasks: (start, end)
    for i, (key, epochs, mean) in enumerate(jobs):
        worker = min(range(slots), key=free.__getitem__)
        for epoch in range(1, max(epochs, 1) + 1):
            seconds = mean * math.exp(rng.gauss(0, noise))
            free[worker] += seconds
            events.append((free[worker], key, f"r{i}", epoch, epochs, seconds))
            if not epochs:
                tasks.append((free[worker] - seconds, free[worker]))
    events.sort()
    end = events[-1][0]
    p = Progress(runs_total=6, tasks_total=12, slots=slots, epochs_left={"mlp": 40, "resnet9": 10},
                 tasks_left={"rewind": 6, "flip": 6})
    samples, now = [], 0.0
    while now < end:
        while events and events[0][0] <= now:
            _, key, run, epoch, epochs, seconds = events.pop(0)
            if not epochs:
                p.task_finished(key, seconds, ok=True)
                continue
            p.epoch_finished(run, key, epoch, epochs, 0.5, None if epoch == 1 else seconds)
            if epoch == epochs:
                p.run_finished(run, key, epochs, ok=True)
        p.tasks_running = sum(start <= now < stop for start, stop in tasks)
        samples.append((now, end - now, p.estimate(), p.eta(now)))
        now += 1.0
    return samples


def ratios(figures: list[Estimate | None]) -> list[float]:
    """Consecutive ratios of each figure (low, point, high) where both are known, finite and at least 10 s."""
    found = []
    for a, b in zip(figures, figures[1:], strict=False):
        for name in ("low", "point", "high"):
            x, y = (None if e is None else getattr(e, name) for e in (a, b))
            if x is not None and y is not None and math.isfinite(x) and math.isfinite(y) and min(x, y) >= 10:
                found.append(y / x)
    return found


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_eta_shown_does_not_jump_and_its_range_holds_the_true_time_left(seed):
    samples = simulate(seed)
    shown, raw = ratios([s[3] for s in samples]), ratios([s[2] for s in samples])
    # once a second: at most 1 s counted down (0.9 at 10 s) and a slow drift; the raw estimate does jump on the
    # same sequence (a kind's first timings reprice all its work), so the bound is the smoothing's doing
    assert min(shown) >= 0.85 and max(shown) <= 1.3, (min(shown), max(shown))
    assert min(raw) < 0.85 or max(raw) > 1.3
    judged = [(t, true, eta) for t, true, _, eta in samples if eta is not None and eta.point is not None and true >= 5]
    assert len(judged) >= 20
    for t, true, eta in judged:
        assert eta.low <= true <= eta.high, (t, true, eta)
    # before any analysis has a timing, a lower bound only, never a figure that claims too much
    early = [(true, eta) for _, true, _, eta in samples if eta is not None and eta.point is None]
    assert early and all(eta.low <= true and eta.high == math.inf and eta.untimed == ("analyses",)
                         for true, eta in early)


def test_steady_rates_end_in_a_single_figure_close_to_the_truth():
    rng = random.Random(7)
    p = Progress(runs_total=1, tasks_total=0, epochs_left={"mlp": 200})
    now, texts = 0.0, []
    for epoch in range(1, 201):
        now += 2.0 * math.exp(rng.gauss(0, 0.1))
        p.epoch_finished("r", "mlp", epoch, 200, 0.5, None if epoch == 1 else 2.0)
        texts.append(p.eta_text(now))
        if epoch == 100:
            eta = p.eta(now)
            assert eta.stable and eta.point == pytest.approx(100 * 2.0, rel=0.15)
            assert p.eta(now) == eta  # drawing twice at one moment shows the same figures
    assert "-" in texts[2] and re.fullmatch(r"ETA \d+:\d\d:\d\d", texts[100])  # a range first, then one figure


def test_the_driver_says_analyses_wait_for_trainings_only_while_trainings_keep_cpus(monkeypatch, tmp_path):
    """`_Driver.pump` with Ray's calls replaced (no cluster): 2 CPUs, 1 training left keeping 1 CPU, 3 one-CPU
    tasks: one runs, two are held for the training; once no training is left, two run and one waits for a CPU."""
    from sweep import engine
    from sweep.config import RunConfig
    from sweep.grids import Grid, load_grid
    from sweep.plan import Task
    from sweep.probes import PROBES
    from sweep.store import Store

    class Remote:
        def options(self, **_: object) -> Remote:
            return self

        def remote(self, *_: object) -> object:
            return object()

    monkeypatch.setattr(engine, "_probe_task", Remote())
    monkeypatch.setattr(engine.ray, "wait", lambda refs, **_: ([], refs))
    probe = next(name for name, p in PROBES.items() if p.num_cpus == 1.0)
    cfg = RunConfig(dataset="digits", arch="mlp")
    out = io.StringIO()
    driver = engine._Driver(Grid("t", [cfg], load_grid("smoke").analysis), engine.Options(results=str(tmp_path)),
                            Store(str(tmp_path)), {}, Progress(runs_total=1, tasks_total=3),
                            ProgressView(out, interactive=False), 2.0, trainings_left=1)
    driver.datasets = {"digits": None}
    driver.queue.extend(Task(cfg, probe, str(i)) for i in range(3))
    driver.pump()
    assert (driver.progress.tasks_running, driver.progress.tasks_queued, driver.progress.queue_held) == (1, 2, True)
    assert "1 analyses running, 2 queued (CPUs kept for trainings)" in out.getvalue()
    driver.trainings_left = 0  # the last training ended
    driver.pump()
    assert (driver.progress.tasks_running, driver.progress.tasks_queued, driver.progress.queue_held) == (2, 1, False)
    assert "2 analyses running, 1 waiting for a free CPU" in driver.progress.line()
    assert "queued" not in driver.progress.line()


CHILD = r'''
import fcntl, os, pickle, struct, sys, termios
from sweep.progress import Progress, ProgressView

def mark(text):
    sys.stdout.flush()
    os.write(1, f"\x1b]999;{text}\x07".encode())

p = Progress(runs_total=20, tasks_total=60, slots=4.0, epochs_left={"mlp": 200, "resnet9": 40},
             tasks_left={"rewind": 20, "flip": 40})
view = ProgressView()
for i in range(12):
    arch, variant = ("mlp" if i < 9 else "resnet9"), ("standard" if i % 2 else "example_tied")
    run_id, label = f"digits-{arch}-{variant}-n0.1-s{i}-{i:010x}", f"digits/{arch}/{variant}/s{i} n0.1"
    p.epoch_finished(run_id, arch, 1, 10, float("nan"), None, label)
    p.epoch_finished(run_id, arch, 2, 10, 0.4 + i / 100, 1.5 if arch == "mlp" else 6.0, label)
p.trainings_waiting = 8
view.show(p, force=True); mark("trainings")
copy = pickle.loads(pickle.dumps(view))  # as Tune does with the callbacks that hold it, while it draws
assert not copy.interactive and copy.stream is sys.stdout
for columns, name in ((60, "narrow"), (int(sys.argv[1]), "wide again")):
    mark(f"width={columns}")
    fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    view.show(p, force=True); mark(name)
for i in range(12):
    arch, variant = ("mlp" if i < 9 else "resnet9"), ("standard" if i % 2 else "example_tied")
    p.run_finished(f"digits-{arch}-{variant}-n0.1-s{i}-{i:010x}", arch, 10, ok=True)
p.tasks_running, p.tasks_queued, p.queue_held = 2, 30, True
view.show(p, force=True); mark("held")
p.trainings_waiting, p.epochs_left = 0, {"mlp": 0, "resnet9": 0}
p.task_finished("rewind", 4.0, ok=True)
p.tasks_running, p.tasks_queued, p.queue_held = 4, 28, False
view.show(p, force=True); mark("after")
view.print("FAILED flip 0 of digits-mlp: ValueError: boom")
view.show(p, force=True); mark("printed")
view.close(); mark("closed")
'''


def run_on_pty(columns: int, rows: int = 24, term: str = "xterm-256color") -> str:
    """CHILD on a real pseudo-terminal of `columns` x `rows`: everything it wrote, as the terminal got it."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(TERM=term, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(columns)], stdin=follower, stdout=follower,
                            stderr=follower, env=env, start_new_session=True)
    os.close(follower)
    out, deadline = b"", time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if select.select([leader], [], [], 0.2)[0]:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal closed: the child ended
                    chunk = b""
                out += chunk
                if not chunk:
                    break
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    assert proc.wait(timeout=10) == 0, out.decode(errors="replace")
    return out.decode()


@pytest.mark.parametrize("columns", [80, 160])
def test_the_display_fits_a_real_terminal_header_first_trainings_by_name(columns):
    out = run_on_pty(columns)
    # the brief's plain check: with escape codes stripped, no piece drawn at the first width is wider than it
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "\n", out.split("width=60")[0])
    assert max(map(len, re.split(r"[\r\n]", drawn))) <= columns
    screen = Screen(columns, 24).feed(out)
    assert not screen.wraps, screen.wraps  # no line ever reached past the right edge, at any width
    shots = dict(screen.snapshots)
    for name, lines in shots.items():
        headers = [i for i, line in enumerate(lines) if line.startswith("runs ")]
        assert len(headers) == 1, (name, lines)  # redrawn in place: one display on screen, whatever came before
        assert re.search(r"\| ETA (>?\d+:\d\d:\d\d)", lines[headers[0]]), (name, lines)  # the ETA: never cut off
    for name in ("trainings", "wide again"):
        lines = shots[name]
        assert lines[0].startswith("runs 0/20 | analyses 0/60 | ETA ") and lines[1] == "8 training(s) waiting to start"
        found = [re.fullmatch(r"  (\S+/\S+/\S+/s\d+ n0\.1) +epoch 2/10  noisy acc 4\d%", line) for line in lines[2:-1]]
        assert all(found) and len(found) == 7 and lines[-1] == "  +5 more", lines  # 7 + the line naming 5 more
        shown = [m.group(1) for m in found]
        assert shown == sorted(shown) and shown[0] == "digits/mlp/example_tied/s0 n0.1"
    narrow = shots["narrow"]  # the width is read again on each draw: every line cut to 60, marked where cut
    assert len(narrow) == len(shots["trainings"]) and all(len(line) <= 60 for line in narrow)
    assert sum(len(whole) > 60 for whole in shots["trainings"]) >= 8  # the header and the trainings were cut
    assert all(line[:59] == whole[:59] and line.endswith("…") for line, whole in
               zip(narrow, shots["trainings"], strict=True) if len(whole) > 60)
    assert any("queued (CPUs kept for trainings)" in line for line in shots["held"])
    for name in ("after", "printed", "closed"):  # no training left: nothing says it holds anything back
        assert not any("queued" in line or "epoch" in line for line in shots[name]), shots[name]
    assert shots["after"][1] == "4 analyses running, 28 waiting for a free CPU"
    assert shots["printed"][0] == "FAILED flip 0 of digits-mlp: ValueError: boom"  # above the display
    assert shots["printed"][1].startswith("runs 12/20 | analyses 1/60 | ETA ")
    if columns == 80:
        print("\n".join(shots["trainings"]))


def test_a_terminal_that_cannot_move_the_cursor_gets_plain_lines():
    out = run_on_pty(80, term="dumb")
    assert "\x1b[" not in out  # no cursor movement, no colours
    lines = [line for line in re.sub(r"\x1b\][^\x07]*\x07", "", out).splitlines() if line]
    assert lines[0].startswith("runs 0/20 | analyses 0/60 | ETA ") and "training digits/mlp/example_tied/s0" in lines[0]
    assert "FAILED flip 0 of digits-mlp: ValueError: boom" in lines
