import pytest
from pydantic import ValidationError

from worker.presets import FIELDS, INT_RANGES, PRESETS, build_config, pair_configs


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
    "override, field, message",
    [
        ({"lr": 0}, "lr", "lr must be > 0"),
        ({"lr": float("nan")}, "lr", "lr must be > 0"),
        ({"lr": True}, "lr", "Input should be a valid number"),
        ({"width": 0}, "width", "width must be between 1 and 8192"),
        ({"width": 10**6}, "width", "width must be between 1 and 8192"),
        ({"width": True}, "width", "Input should be a valid integer"),  # not a width of 1
        ({"epochs": "3"}, "epochs", "Input should be a valid integer"),
        ({"optimizer": "lbfgs"}, "optimizer", "sgd"),
        ({"batch_size": 0}, "batch_size", "batch_size must be between 1 and 100000"),
        ({"batch_size": 10**23}, "batch_size", "batch_size must be between 1 and 100000"),
        ({"epochs": 0}, "epochs", "epochs must be between 1 and 10000"),
        ({"epochs": 10**23}, "epochs", "epochs must be between 1 and 10000"),
        ({"seed": 2**32}, "seed", "seed must be between 0 and 4294967295"),
        ({"snapshot_every": 0}, "snapshot_every", "snapshot_every must be between 1 and 1000000000"),
        ({"snapshot_every": 10**23}, "snapshot_every", "snapshot_every must be between 1 and 1000000000"),
        ({"sharpness_every": 10**23}, "sharpness_every", "sharpness_every must be between 0 and 1000000000"),
        ({"sharpness_subset": 10**23}, "sharpness_subset", "sharpness_subset must be between 1 and 100000"),
        ({"optimizer_state_in_neuron": 1}, "optimizer_state_in_neuron", "Input should be a valid boolean"),
        ({"colour": "red"}, "colour", "Extra inputs"),
        # Rules between fields name the field they are about (the form shows the message next to it).
        ({"preset": "mnist"}, "data_path",
         "data_path is required for the mnist preset (an IDX directory or a .npz file)"),
        ({"data_path": "mnist.npz"}, "data_path", "data_path applies to the mnist preset only"),
        ({"momentum": 0.5}, "momentum", "momentum applies to the momentum optimizer only"),
        ({"preset": "figure-eight-momentum", "optimizer": "adam", "momentum": 0.5}, "momentum",
         "momentum applies to the momentum optimizer only"),
        ({"optimizer_state_in_neuron": True}, "optimizer_state_in_neuron",
         "optimizer_state_in_neuron applies to the adam optimizer only"),
    ],
)
def test_invalid_config_is_refused_naming_the_field(override, field, message):
    with pytest.raises(ValidationError) as refused:
        build_config({"preset": "figure-eight"} | override)
    [error] = refused.value.errors()
    assert error["loc"] == (field,) and message in error["msg"], error


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_the_forms_submission_of_every_presets_defaults_is_accepted(name, optimizer):
    """The new-run form sends every field of the preset (GET /api/presets defaults), the optimizer as chosen."""
    form = {"preset": name} | PRESETS[name].defaults | {"optimizer": optimizer}
    if name == "mnist":
        form["data_path"] = "mnist.npz"
    assert build_config(form).model_dump() == form
    small, large = pair_configs(form)
    assert (small.lr, large.lr) == tuple(run.lr for run in PRESETS[name].pair)


def test_momentum_with_another_optimizer_is_only_its_unused_default_or_zero():
    assert build_config({"preset": "figure-eight-momentum", "optimizer": "sgd"}).momentum == 0.9
    assert build_config({"preset": "figure-eight-momentum", "optimizer": "sgd", "momentum": 0}).momentum == 0
    assert build_config({"preset": "figure-eight", "optimizer": "momentum", "momentum": 0.5}).momentum == 0.5


def test_limits_are_the_forms_ranges():
    ranges = {f["name"]: (f["min"], f["max"]) for f in FIELDS if f["type"] == "int"}
    assert ranges == INT_RANGES
    assert ranges["sharpness_subset"] == (1, 100_000) and ranges["seed"] == (0, 2**32 - 1)


def test_unknown_preset_is_refused():
    with pytest.raises(ValidationError, match="unknown preset 'nope'"):
        build_config({"preset": "nope"})


def test_paper_pairs_share_everything_but_lr_and_epochs():
    small, large = pair_configs({"preset": "figure-eight", "epochs": 2})
    assert (small.lr, large.lr) == (0.0025, 0.003)
    assert small.epochs == large.epochs == 2
    assert small.model_dump() | {"lr": 0, "epochs": 0} == large.model_dump() | {"lr": 0, "epochs": 0}
    adam_small, adam_large = pair_configs({"preset": "digits-adam"})
    assert (adam_small.lr, adam_small.epochs, adam_large.lr, adam_large.epochs) == (1e-5, 400, 1e-3, 200)
