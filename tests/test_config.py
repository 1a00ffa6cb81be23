import pytest

from sweep.config import AnalysisConfig, RunConfig
from sweep.errors import UserError


def test_run_id_is_stable_and_changes_with_every_result_field():
    a = RunConfig(epochs=3)
    assert a.run_id == RunConfig(epochs=3).run_id
    for change in ({"seed": 1}, {"noise": 0.2}, {"width": 0.5}, {"epochs": 4}, {"noise_seed": 3}, {"lr": 0.05}):
        assert RunConfig(**{"epochs": 3, **change}).run_id != a.run_id


@pytest.mark.parametrize("fields, needle", [
    ({"dataset": "imagenet"}, "unknown dataset"),
    ({"arch": "lenet"}, "unknown architecture"),
    ({"variant": "magic"}, "unknown variant"),
    ({"noise": 1.0}, "[0, 1)"),
    ({"noise": -0.1}, "[0, 1)"),
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"seed": -1}, "seed"),
    ({"width": 0}, "width"),
    ({"arch": "vit", "variant": "tied"}, "needs arch"),
])
def test_invalid_run_fields_are_refused_by_name(fields, needle):
    with pytest.raises(UserError, match=None) as info:
        RunConfig(**fields).validate()
    assert needle in str(info.value)


def test_from_dict_refuses_unknown_keys():
    with pytest.raises(UserError, match="unknown RunConfig field"):
        RunConfig.from_dict({"dataset": "digits", "epoch": 3})


@pytest.mark.parametrize("fields", [{"flip_cap": 0}, {"flip_clean": 0}, {"flip_noisy": -1}, {"retrain_epochs": 0},
                                    {"rewind_epochs": [-1]}, {"flip_eval_size": 0}])
def test_invalid_analysis_settings_are_refused(fields):
    with pytest.raises(UserError):
        AnalysisConfig.from_dict(fields)


def test_analysis_eval_size_all_means_whole_split():
    assert AnalysisConfig.from_dict({"flip_eval_size": "all"}).flip_eval_size is None
