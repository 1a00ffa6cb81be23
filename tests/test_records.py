"""Done-records (sweep.records) and the plan made from them (sweep.plan), on real trainings written to a real
results folder: what counts as done, what damage is found, and that damaged work is redone whole."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from sweep import records, schemas
from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import DamagedFile, UserError
from sweep.grids import Grid
from sweep.plan import Task, check_results_match, make_plan, repair, selected_probes, task_record
from sweep.store import Store
from sweep.train import checkpoint_dir, execute_run, load_run, run_is_complete, run_record
from tests.tables import sample_frame

CFG = RunConfig(dataset="digits", arch="mlp", noise=0.1, seed=0, noise_seed=0, epochs=4, batch_size=256, width=0.5)
ANALYSIS = AnalysisConfig(rewind_epochs=(0, 2), retrain_epochs=2)
GRID = Grid("tiny", (CFG,), ANALYSIS)
CPU = torch.device("cpu")


@pytest.fixture
def trained(tmp_path) -> Store:
    store = Store(str(tmp_path / "results"))
    execute_run(CFG, store, CPU)
    return store


def checkpoint(store: Store, epoch: int) -> str:
    return f"{checkpoint_dir(CFG)}/epoch_{epoch:03d}.pt"


def flip_a_byte(store: Store, rel: str) -> None:
    data = bytearray(store.read_bytes(rel))
    data[len(data) // 2] ^= 0xFF
    store.write_bytes(rel, bytes(data))


def test_a_run_record_lists_every_checkpoint_and_table_with_size_and_checksum(trained):
    record, problem = run_record(trained, CFG, checksums=True)
    assert problem is None and run_is_complete(trained, CFG)
    expected = {checkpoint(trained, e) for e in range(CFG.epochs + 1)}
    expected |= {f"{t}/{CFG.run_id}.parquet" for t in ("examples", "epochs", "gradients", "detection_epochs", "runs")}
    assert set(record.files) == expected
    for rel, entry in record.files.items():
        assert entry == records.FileEntry.of(trained.read_bytes(rel))
    assert record.settings == records.plain(CFG.__dict__)


def older_layout(store: Store) -> None:
    """The run's record as a version before fixed table schemas wrote it (no `layout` field: layout 1)."""
    rel = records.run_record_path(CFG.run_id)
    doc = json.loads(store.read_bytes(rel))
    del doc["layout"]
    store.write_bytes(rel, json.dumps(doc).encode())


@pytest.mark.parametrize("damage, needle", [
    (lambda s: s.write_bytes(checkpoint(s, 4), s.read_bytes(checkpoint(s, 4))[:100]), "has 100 bytes"),
    (older_layout, f"its tables are in an older layout (1; this version writes {schemas.LAYOUT})"),
    (lambda s: s.delete(checkpoint(s, 2)), "epoch_002.pt is missing"),
    (lambda s: s.write_bytes(f"epochs/{CFG.run_id}.parquet", b"PAR1"), "has 4 bytes"),
])
def test_a_cut_or_deleted_file_undoes_the_run_and_it_is_trained_again_from_the_start(trained, damage, needle):
    epochs_before = pd.read_parquet(trained.path("epochs"))
    damage(trained)
    assert not run_is_complete(trained, CFG)
    plan = make_plan(trained, GRID, selected_probes(None))
    assert plan.pending == [CFG] and needle in plan.damaged_runs[CFG.run_id]
    assert plan.damage_lines() == [f"run {CFG.run_id}: {plan.damaged_runs[CFG.run_id]}; training it again, and "
                                   "redoing its analyses"]
    repair(trained, plan, GRID)
    assert not trained.exists(checkpoint_dir(CFG)) and not trained.exists(f"epochs/{CFG.run_id}.parquet")
    execute_run(CFG, trained, CPU)
    record, problem = run_record(trained, CFG, checksums=True)
    assert problem is None and len([f for f in record.files if "/epoch_" in f]) == CFG.epochs + 1
    pd.testing.assert_frame_equal(pd.read_parquet(trained.path("epochs")).drop(columns="seconds"),
                                  epochs_before.drop(columns="seconds"))


def test_an_altered_byte_is_found_by_verify_and_by_the_probe_that_reads_it(trained):
    flip_a_byte(trained, checkpoint(trained, 2))
    assert run_is_complete(trained, CFG)  # same size: the cheap check cannot see it ...
    plan = make_plan(trained, GRID, selected_probes(None), checksums=True)  # ... --verify does
    assert "epoch_002.pt differs from its recorded SHA-256" in plan.damaged_runs[CFG.run_id]
    run = load_run(trained, CFG, CPU)
    assert run.epochs == list(range(CFG.epochs + 1))
    run.state(1)
    with pytest.raises(DamagedFile, match="differs from its done-record") as caught:
        run.state(2)  # a probe reading it fails at once
    assert caught.value.rel == checkpoint(trained, 2)


def test_a_probe_never_runs_on_a_run_without_its_checkpoints(trained):
    trained.delete(checkpoint(trained, CFG.epochs))
    run = load_run(trained, CFG, CPU)
    assert run.final_epoch == CFG.epochs  # the record's epochs, not what a listing would find now
    with pytest.raises(DamagedFile, match="is missing"):
        run.state(run.final_epoch)


def test_a_resume_state_with_a_hole_or_unreadable_trains_from_the_start(trained, capsys):
    trained.delete(records.run_record_path(CFG.run_id))
    trained.delete(checkpoint(trained, 1))
    execute_run(CFG, trained, CPU)
    assert "cannot be resumed (checkpoints/" in capsys.readouterr().err
    assert trained.exists(checkpoint(trained, 1)) and run_is_complete(trained, CFG)
    trained.delete(records.run_record_path(CFG.run_id))
    trained.write_bytes(f"{checkpoint_dir(CFG)}/state.pt", b"not a checkpoint")
    execute_run(CFG, trained, CPU)
    assert "training it from the start" in capsys.readouterr().err and run_is_complete(trained, CFG)


def write_task(store: Store, task: Task, run_record_id: str, analysis: AnalysisConfig) -> None:
    rel = store.table_file("rewinding", task.file_name)
    files = {rel: store.write_table("rewinding", task.file_name, sample_frame("rewinding", task.cfg, n=1))}
    records.write(store, records.task_record_path(task.file_name), task_record(task, run_record_id, analysis, files))


def test_probe_results_from_other_settings_are_refused_until_their_files_are_deleted(trained):
    probes = selected_probes(("rewind",))
    record, _ = run_record(trained, CFG)
    tasks = make_plan(trained, GRID, probes).tasks
    for task in tasks:
        write_task(trained, task, record.record_id, AnalysisConfig(rewind_epochs=(0, 1, 3)))
    plan = make_plan(trained, GRID, probes)
    assert len(plan.conflicts) == len(tasks) and not plan.todo
    with pytest.raises(UserError, match=r"rewind_epochs=\[0, 1, 3\] \(this grid: \[0, 2\]\)"):
        check_results_match(trained, GRID, probes, plan)
    trained.delete(trained.table_file("rewinding", tasks[0].file_name))  # the way out the message names
    plan = make_plan(trained, GRID, probes)
    assert plan.todo == [tasks[0]] and len(plan.conflicts) == len(tasks) - 1


def test_a_task_is_done_only_for_the_training_it_read_and_while_its_files_match(trained):
    probes = selected_probes(("rewind",))
    record, _ = run_record(trained, CFG)
    tasks = make_plan(trained, GRID, probes).tasks
    for task in tasks:
        write_task(trained, task, record.record_id, ANALYSIS)
    assert make_plan(trained, GRID, probes).tally.complete
    write_task(trained, tasks[0], "an-earlier-training", ANALYSIS)
    trained.write_bytes(trained.table_file("rewinding", tasks[1].file_name), b"PAR1")
    plan = make_plan(trained, GRID, probes)
    assert plan.todo == tasks[:2] and list(plan.damaged_tasks) == [tasks[1]]
    assert plan.tally.tasks_done == len(tasks) - 2


def test_keep_checkpoints_keeps_what_the_analyses_read_and_a_grid_needing_more_is_refused(tmp_path):
    """keep_checkpoints = "probes": a run keeps epoch 0, the rewind epochs and the last (here 0, 2, 4 of 4); a
    later grid whose rewinding reads epoch 1 is refused in one line naming the epoch, never trained again."""
    from sweep.plan import checkpoint_epochs
    from sweep.train import record_epochs

    store = Store(str(tmp_path / "results"))
    keep = checkpoint_epochs(CFG, ANALYSIS)
    assert keep == [0, 2, 4] and checkpoint_epochs(CFG, AnalysisConfig(keep_checkpoints="all")) is None
    execute_run(CFG, store, CPU, keep=set(keep))
    record, problem = run_record(store, CFG)
    assert problem is None and record_epochs(record) == [0, 2, 4]
    assert sorted(p.name for p in (tmp_path / "results" / checkpoint_dir(CFG)).glob("epoch_*")) == [
        "epoch_000.pt", "epoch_002.pt", "epoch_004.pt"]
    assert load_run(store, CFG, CPU).epochs == [0, 2, 4]
    plan = make_plan(store, GRID, selected_probes(None))
    check_results_match(store, GRID, selected_probes(None), plan)  # the grid it was trained for: fine
    wider = Grid("tiny", (CFG,), AnalysisConfig(rewind_epochs=(0, 1, 2), retrain_epochs=2))
    with pytest.raises(UserError, match=r"kept no checkpoint for epoch\(s\) 1, which grid 'tiny'"):
        check_results_match(store, wider, selected_probes(None), make_plan(store, wider, selected_probes(None)))
    # analyses that do not read epoch 1 are fine
    check_results_match(store, wider, selected_probes(("flip",)), make_plan(store, wider, selected_probes(("flip",))))
    assert run_is_complete(store, CFG)  # nothing was withdrawn


def test_an_analysis_setting_changed_with_set_on_a_finished_folder_is_refused_as_a_grid_files(trained):
    from sweep.grids import select_runs

    probes = selected_probes(("rewind",))
    record, _ = run_record(trained, CFG)
    for task in make_plan(trained, GRID, probes).tasks:
        write_task(trained, task, record.record_id, ANALYSIS)
    assert not make_plan(trained, GRID, probes).conflicts  # made with the grid's own settings: done
    changed = select_runs(GRID, sets=["rewind_epochs=0,1"])
    with pytest.raises(UserError, match=r"rewind_epochs=\[0, 2\] \(this grid: \[0, 1\]\)"):
        check_results_match(trained, changed, probes, make_plan(trained, changed, probes))
