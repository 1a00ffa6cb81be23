"""The status line: counts, trainings in flight, waiting notes, and an ETA from measured rates (never nan)."""

from __future__ import annotations

import io
import re

import pytest

from sweep.progress import Progress, ProgressView, hms


@pytest.mark.parametrize("seconds, text", [(0, "0:00:00"), (59.4, "0:00:59"), (61, "0:01:01"), (3725, "1:02:05"),
                                           (-3, "0:00:00")])
def test_hms(seconds, text):
    assert hms(seconds) == text


def test_eta_waits_for_a_timing_then_follows_measured_rates():
    p = Progress(runs_total=2, tasks_total=4, slots=2.0, epochs_left={"mlp": 10, "resnet9": 4},
                 tasks_left={"rewind": 4})
    assert p.eta() is None
    assert "ETA after the first timings" in p.line() and "nan" not in p.line()
    p.epoch_finished("r1", "mlp", 1, 10, 0.1, None)          # the first report of a trial holds its start-up
    assert p.eta() is None
    p.epoch_finished("r1", "mlp", 2, 10, 0.2, 1.0)
    p.epoch_finished("r2", "resnet9", 1, 4, 0.0, None)
    p.epoch_finished("r2", "resnet9", 2, 4, 0.0, 5.0)
    # left: 8 mlp epochs x 1 s + 2 resnet9 epochs x 5 s; no task is timed yet, so the 4 rewind tasks are left
    # out and the line marks the figure as incomplete
    assert p.eta() == pytest.approx(((8 * 1.0 + 2 * 5.0) / 2.0, False))
    assert re.search(r"ETA >0:00:09\b", p.line())
    p.task_finished("rewind", 3.0, ok=True)
    assert p.eta() == pytest.approx(((8 * 1.0 + 2 * 5.0 + 3 * 3.0) / 2.0, True))
    assert p.tasks_done == 1 and p.tasks_left == {"rewind": 3}


def test_an_untimed_architecture_borrows_the_measured_mean_and_says_so():
    p = Progress(runs_total=2, tasks_total=0, epochs_left={"mlp": 3, "vit": 2})
    p.epoch_finished("r1", "mlp", 2, 4, 0.5, 2.0)
    assert p.eta() == pytest.approx((2 * 2.0 + 2 * 2.0, False))
    p.epoch_finished("r2", "vit", 2, 4, 0.5, 6.0)
    assert p.eta() == pytest.approx((2 * 2.0 + 1 * 6.0, True))


def test_line_shows_counts_trainings_and_what_waits():
    p = Progress(runs_total=10, tasks_total=66, runs_done=3, tasks_done=12)
    p.epoch_finished("digits-mlp-standard-n0.1-s0-abc123", "mlp", 7, 60, 0.4567, None)
    p.trainings_waiting, p.tasks_queued = 2, 5
    p.task_finished("flip", None, ok=False)
    line = p.line()
    assert line.startswith("runs 3/10 | analyses 12/66 | 1 failed | training abc123 e7/60 noisy 46%")
    assert "2 training(s) waiting for free CPUs/GPUs" in line and "5 analyses queued" in line
    p.run_finished("digits-mlp-standard-n0.1-s0-abc123", "mlp", 60, ok=True)
    assert "training " not in p.line() and p.runs_done == 4


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


def test_terminal_output_redraws_one_line_in_place():
    stream = io.StringIO()
    view, p = ProgressView(stream, interactive=True), Progress(runs_total=3, tasks_total=0)
    for done in range(3):
        p.runs_done = done
        view.show(p, force=True)
    view.print("FAILED something")
    view.close()
    text = stream.getvalue()
    assert text.count("\n") <= 3 and text.count("\r") >= 3
    assert "runs 2/3" in text.split("\n")[-2] or "runs 2/3" in text.split("\n")[-1]
    assert "FAILED something" in text


def test_a_resumed_run_leaves_no_epochs_behind_when_it_ends():
    """A run that resumed from epoch 6 of 10 reports 4 epochs; when it ends, none of its 10 is left."""
    p = Progress(runs_total=2, tasks_total=0, epochs_left={"mlp": 20})
    for epoch in range(7, 11):
        p.epoch_finished("resumed", "mlp", epoch, 10, 0.5, 1.0)
    p.run_finished("resumed", "mlp", 10, ok=True)
    assert p.epochs_left == {"mlp": 10} and p.eta() == pytest.approx((10.0, True))
    p.run_finished("failed-at-start", "mlp", 10, ok=False)
    assert p.epochs_left == {"mlp": 0} and p.failed == 1
