import pytest
from pydantic import ValidationError

from worker.presets import PRESETS, build_config, pair_configs


def test_figure_eight_defaults_follow_the_paper():
    config = build_config({"preset": "figure-eight"})
    assert (config.width, config.lr, config.optimizer, config.batch_size, config.epochs) == (1024, 0.003, "sgd", 128, 100)
    assert build_config({"preset": "two-circles"}).optimizer == "adam"
    assert build_config({"preset": "two-circles"}).lr == 1e-2
    digits = build_config({"preset": "digits"})
    assert (digits.width, digits.batch_size) == (256, 128)
    assert PRESETS["digits"].neuron_dim() == 74


def test_overrides_replace_defaults():
    config = build_config({"preset": "figure-eight", "lr": 0.0025, "epochs": 3, "seed": 7})
    assert (config.lr, config.epochs, config.seed, config.width) == (0.0025, 3, 7, 1024)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"lr": 0}, "lr must be > 0"),
        ({"lr": float("nan")}, "lr must be > 0"),
        ({"width": 0}, "width must be between 1 and"),
        ({"width": 10**6}, "width must be between 1 and"),
        ({"optimizer": "lbfgs"}, "sgd"),
        ({"batch_size": 0}, "batch_size must be between"),
        ({"epochs": 0}, "epochs must be between"),
        ({"snapshot_every": 0}, "snapshot_every must be >= 1"),
        ({"colour": "red"}, "Extra inputs"),
        ({"preset": "mnist"}, "data_path is required"),
    ],
)
def test_invalid_config_is_refused(override, message):
    with pytest.raises(ValidationError, match=message):
        build_config({"preset": "figure-eight"} | override)


def test_unknown_preset_is_refused():
    with pytest.raises(ValidationError, match="unknown preset 'nope'"):
        build_config({"preset": "nope"})


def test_paper_pairs_share_everything_but_lr_and_epochs():
    small, large = pair_configs({"preset": "figure-eight", "epochs": 2})
    assert (small.lr, large.lr) == (0.0025, 0.003)
    assert small.epochs == large.epochs == 2
    assert small.model_dump() | {"lr": 0, "epochs": 0} == large.model_dump() | {"lr": 0, "epochs": 0}
    adam_small, adam_large = pair_configs({"preset": "digits-adam"})
    assert (adam_small.lr, adam_small.epochs, adam_large.lr, adam_large.epochs) == (1e-5, 40, 1e-3, 20)
