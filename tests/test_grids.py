import pytest

from sweep.errors import UserError
from sweep.grids import load_grid
from sweep.plan import auxiliary_by_base, selected_probes, tasks_for


def test_builtin_grids_have_the_documented_shape():
    paper, full = load_grid("paper"), load_grid("full")
    assert len(paper.runs) == 3 * 3 + 3 * 3  # 3 datasets x 3 archs, plus 3 datasets x 3 dropout variants
    assert {c.dataset for c in paper.runs} == {"cifar10", "mnist", "svhn"}
    assert {(c.arch, c.batch_size) for c in paper.runs} == {("resnet9", 512), ("resnet50", 512), ("vit", 128)}
    assert len(full.runs) == len(paper.runs) * 3 * 3
    assert {c.noise for c in full.runs} == {0.05, 0.1, 0.2} and {c.seed for c in full.runs} == {0, 1, 2}
    demo = load_grid("demo")
    assert {c.arch for c in demo.runs} == {"mlp", "resnet9"} and len({c.seed for c in demo.runs}) >= 2
    assert all(c.dataset == "digits" for c in demo.runs + load_grid("smoke").runs)


@pytest.mark.parametrize("name", ["smoke", "demo"])
def test_small_grids_run_every_registered_analysis(name):
    grid = load_grid(name)
    probes = selected_probes(None)
    aux = auxiliary_by_base(grid.runs)  # probes with `needs` apply where the grid has the trainings they read
    used = {t.probe for cfg in grid.runs for t in tasks_for(cfg, probes, grid.analysis, aux)}
    assert used == set(probes)


def test_run_ids_are_deterministic_and_unique():
    a, b = load_grid("full"), load_grid("full")
    assert [c.run_id for c in a.runs] == [c.run_id for c in b.runs]
    assert len({c.run_id for c in a.runs}) == len(a.runs)


def test_toml_grid_expands_products_and_reads_analysis(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("[[runs]]\ndataset = 'digits'\narch = ['mlp', 'resnet9']\nseed = [0, 1, 2]\nwidth = 0.5\n"
                    "epochs = 3\n\n[analysis]\nflip_clean = 7\nflip_eval_size = 'all'\n")
    grid = load_grid(str(path))
    assert grid.name == "mine" and len(grid.runs) == 6
    assert {(c.arch, c.seed, c.noise_seed) for c in grid.runs} == {(a, s, s) for a in ("mlp", "resnet9")
                                                                   for s in (0, 1, 2)}
    assert grid.analysis.flip_clean == 7 and grid.analysis.flip_eval_size is None


@pytest.mark.parametrize("text, needle", [
    ("[[runs]]\ndataset = 'digits'\narch = 'mlp'\nepochs = 0\n", "epochs"),
    ("[[runs]]\ndataset = 'mnistt'\narch = 'mlp'\n", "unknown dataset"),
    ("[runs]\ndataset = 'digits'\n", "[[runs]]"),
    ("[[runs]]\ndataset = 'digits'\narch = 'mlp'\n[analysis]\nflip_cap = 0\n", "flip_cap"),
    ("[[runs]]\ndataset = 'digits'\narch = 'mlp'\n[extras]\nx = 1\n", "unknown top-level"),
])
def test_bad_toml_grids_are_refused_clearly(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_grid(str(path))
    assert needle in str(info.value)


def test_unknown_grid_name_lists_the_accepted_ones():
    with pytest.raises(UserError, match="smoke, demo, paper, full"):
        load_grid("giant")


def test_the_readme_grid_example_loads_with_every_field_it_shows(tmp_path):
    """The README's TOML example is a valid grid as written: its block fields (cv_folds, ssft, curvature,
    dropout places, sparse mask) and analysis settings reach the runs and the analysis config."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "readme.toml"
    path.write_text(block)
    grid = load_grid(str(path))
    standard = [c for c in grid.runs if not c.auxiliary]
    assert len(standard) == 8 and all(c.curvature_every == 5 and c.dropout_places == "paper" for c in standard)
    assert sum(c.cv_folds > 0 for c in grid.runs) == 5 * 8 and sum(c.ssft_half > 0 for c in grid.runs) == 2 * 8
    packs = [c for c in grid.runs if c.subsets]  # 100 subset models per standard run in packs of 50
    assert len(packs) == 2 * 8 and {(c.subsets, c.subset_fraction, c.pack) for c in packs} == {(100, 0.7, 50)}
    assert grid.analysis.retrain_peak == 0.5 and grid.analysis.flip_units == "outputs"
