"""The results folder is ours only where we made it (sweep.ownership): a user's README.md is never replaced,
a foreign file at a name a sweep writes is refused, and the catalogue is recognised as ours by its mark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sweep import ownership
from sweep.errors import UserError
from sweep.paths import check_results_root
from sweep.schemas import CATALOGUE_MARK, catalogue
from sweep.store import Store

ROOT = Path(__file__).resolve().parents[1]


def test_the_catalogue_starts_with_its_mark_and_the_committed_one_is_ours():
    assert catalogue().splitlines()[0] == CATALOGUE_MARK
    assert ownership.is_ours((ROOT / "results" / "README.md").read_bytes())
    older = catalogue().split("\n", 1)[1]  # what earlier versions wrote: no mark, the same opening
    assert ownership.is_ours(older.encode())
    assert not ownership.is_ours(b"PRECIOUS\n") and not ownership.is_ours(b"# results/\n\nmy notes\n")


def test_a_users_readme_is_left_alone_and_the_catalogue_goes_to_our_own_name(tmp_path, capsys):
    (tmp_path / "README.md").write_text("PRECIOUS\n")
    store = Store(str(tmp_path))
    assert ownership.write_catalogue(store, catalogue()) == "_catalogue.md"
    assert (tmp_path / "README.md").read_text() == "PRECIOUS\n"
    assert (tmp_path / "_catalogue.md").read_text() == catalogue()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "README.md is not a file a sweep wrote, so it is left as it is" in err
    (tmp_path / "_catalogue.md").write_text("also mine\n")
    with pytest.raises(UserError, match="replaces neither"):
        ownership.write_catalogue(store, catalogue())
    assert (tmp_path / "_catalogue.md").read_text() == "also mine\n"


def test_our_own_readme_is_written_when_absent_and_updated_when_ours(tmp_path, capsys):
    store = Store(str(tmp_path))
    assert ownership.write_catalogue(store, catalogue()) == "README.md"
    (tmp_path / "README.md").write_text(catalogue().split("\n", 1)[1] + "an older version's text\n")
    assert ownership.write_catalogue(store, catalogue()) == "README.md"
    assert (tmp_path / "README.md").read_text() == catalogue()
    assert not (tmp_path / "_catalogue.md").exists() and capsys.readouterr().err == ""


@pytest.mark.parametrize(("make", "needle"), [
    (lambda root: (root / "epochs").write_text("mine"), "epochs is a file that a sweep did not write"),
    (lambda root: (root / "_done").write_text("mine"), "_done is a file that a sweep did not write"),
    (lambda root: (root / "checkpoints").write_text("mine"), "checkpoints is a file"),
    (lambda root: (root / "report").write_text("mine"), "report is a file"),
    (lambda root: (root / "_lock.json").mkdir(), "_lock.json is a folder that a sweep did not make"),
    (lambda root: (root / "README.md").mkdir(), "README.md is a folder"),
])
def test_a_foreign_thing_in_the_way_is_refused_in_one_line(tmp_path, make, needle):
    make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UserError, match=needle) as refused:
        ownership.check_results_folder(str(tmp_path))
    assert "\n" not in str(refused.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_folder_of_our_own_and_user_files_beside_ours_pass(tmp_path):
    for folder in ("epochs", "_done/runs", "checkpoints"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("mine")  # a user's file at a name we never write: fine
    (tmp_path / "README.md").write_text(catalogue())
    ownership.check_results_folder(str(tmp_path))
    ownership.check_results_folder(str(tmp_path / "not-yet"))


def test_empty_root_and_repository_top_are_refused(tmp_path, monkeypatch):
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo")
    for location, needle in (("", "--results is empty"), ("  ", "--results is empty"), ("/", "filesystem's root"),
                             ("/../", "filesystem's root"), (".", "top folder of a repository"),
                             (str(tmp_path / "repo"), "top folder of a repository"),
                             ("file://" + str(tmp_path / "repo"), "top folder of a repository")):
        with pytest.raises(UserError, match=needle):
            check_results_root(location)
    check_results_root("results")  # inside the repository: a folder of its own
    check_results_root(str(tmp_path))


@pytest.mark.slow
def test_a_sweep_leaves_a_users_readme_untouched_and_says_where_the_catalogue_is(tmp_path):
    """The issue's case: `echo PRECIOUS > d/README.md`, then a real sweep on d."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "README.md").write_text("PRECIOUS\n")
    (tmp_path / "g.toml").write_text('[[runs]]\ndataset = "digits"\narch = "mlp"\nnoise = 0.1\nseed = 0\n'
                                     'epochs = 1\nbatch_size = 256\n\n[analysis]\nrewind_epochs = [0]\n')
    done = subprocess.run([sys.executable, str(ROOT / "run_sweep.py"), "--grid", str(tmp_path / "g.toml"),
                           "--results", str(d), "--only", "rewind", "--no-report"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (d / "README.md").read_text() == "PRECIOUS\n"
    assert (d / "_catalogue.md").read_text() == catalogue()
    assert f"{d}/README.md is not a file a sweep wrote, so it is left as it is" in done.stderr
