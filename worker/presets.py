"""The paper's experiments as presets, and the validated run configuration.

Pure data (no torch) so the API validates requests with exactly the rules the worker trusts.
Settings follow ../shared/SCIENCE.md (Yang, Poggio, Chuang, Ziyin, arXiv 2510.02670).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_WIDTH = 8192
MAX_EPOCHS = 10_000
MAX_BATCH = 100_000
# More steps than a run has (10,000 epochs of MNIST's 60,000 examples one by one are 6e8): the cap takes nothing away.
MAX_INTERVAL = 10**9
MAX_SHARPNESS_SUBSET = 100_000  # examples; the worker uses the whole training set when it is smaller

# The bounds (inclusive) of every integer field: the validator's messages and the form's ranges (FIELDS).
INT_RANGES: dict[str, tuple[int, int]] = {
    "width": (1, MAX_WIDTH),
    "batch_size": (1, MAX_BATCH),
    "epochs": (1, MAX_EPOCHS),
    "seed": (0, 2**32 - 1),
    "snapshot_every": (1, MAX_INTERVAL),
    "sharpness_every": (0, MAX_INTERVAL),  # 0 = never
    "sharpness_subset": (1, MAX_SHARPNESS_SUBSET),
}

PAPER = "Yang, Poggio, Chuang, Ziyin, Topological Invariance and Breakdown in Learning, arXiv 2510.02670"


@dataclass(frozen=True)
class PairRun:
    label: str
    lr: float
    epochs: int


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    source: str
    description: str
    data: Literal["teacher-1d", "teacher-2d", "digits", "mnist"]
    init: Literal["figure-eight", "two-circles", "double-torus", "sphere"]
    loss: Literal["mse", "cross-entropy"]
    defaults: dict[str, Any]
    pair: tuple[PairRun, PairRun]

    def neuron_dim(self) -> int:
        return {"teacher-1d": 2, "teacher-2d": 3, "digits": 74, "mnist": 794}[self.data]


def _defaults(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "width": 1024,
        "lr": 0.003,
        "optimizer": "sgd",
        "momentum": 0.0,
        "batch_size": 128,
        "epochs": 100,
        "seed": 0,
        # Every 2nd step: the catapult that tears the figure eight lasts a few steps, and lr * K_emp is
        # measured between consecutive snapshots.
        "snapshot_every": 2,
        "sharpness_every": 28,  # once an epoch (28 steps of batch 128 on 3500 points), as the paper measures
        "sharpness_subset": 512,
        "data_path": None,
        "optimizer_state_in_neuron": False,
    }
    return base | overrides


_FIG8 = "1 -> 1024 -> 1 sigmoid student of a 128-unit sigmoid teacher, neurons (w, a) on a figure eight"
_CIRCLES = "1 -> 1024 -> 1 sigmoid student, neurons on two unit circles centred (0, +-1.2), w squeezed by 0.1"
_TORUS = "2 -> 4096 -> 1 sigmoid student, neurons (w1, w2, a) uniform in a rotated solid double torus"
_SPHERE = "64 -> H -> 10 sigmoid on scikit-learn's 8x8 digits, neurons on a unit 2-sphere in a random 3-D subspace"
_MNIST = "784 -> 1024 -> 10 sigmoid on MNIST from a local IDX or .npz file, neurons on a 2-sphere"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("figure-eight", "Figure eight (SGD)", f"{PAPER}, 2-D toy, figure eight, SGD", _FIG8,
               "teacher-1d", "figure-eight", "mse", _defaults(),
               (PairRun("small", 0.0025, 100), PairRun("large", 0.003, 100))),
        Preset("figure-eight-momentum", "Figure eight (momentum 0.9)", f"{PAPER}, 2-D toy, momentum 0.9", _FIG8,
               "teacher-1d", "figure-eight", "mse",
               _defaults(optimizer="momentum", momentum=0.9, lr=0.0045, epochs=50),
               (PairRun("small", 0.0005, 50), PairRun("large", 0.0045, 50))),
        Preset("two-circles", "Two circles (Adam)", f"{PAPER}, 2-D toy, two circles, Adam", _CIRCLES,
               "teacher-1d", "two-circles", "mse", _defaults(optimizer="adam", lr=1e-2, epochs=40),
               (PairRun("small", 1e-4, 40), PairRun("large", 1e-2, 40))),
        Preset("two-circles-sgd", "Two circles (SGD)", f"{PAPER}, 2-D toy, two circles, SGD", _CIRCLES,
               "teacher-1d", "two-circles", "mse", _defaults(),
               (PairRun("small", 0.0025, 100), PairRun("large", 0.003, 100))),
        Preset("double-torus", "Double torus (SGD)", f"{PAPER}, 3-D toy, double torus, GD", _TORUS,
               "teacher-2d", "double-torus", "mse",
               _defaults(width=4096, lr=9e-4, epochs=20, snapshot_every=5, sharpness_every=50),
               (PairRun("small", 8e-4, 20), PairRun("large", 9e-4, 20))),
        Preset("double-torus-adam", "Double torus (Adam)", f"{PAPER}, 3-D toy, double torus, Adam", _TORUS,
               "teacher-2d", "double-torus", "mse",
               _defaults(width=4096, optimizer="adam", lr=0.1, epochs=20, snapshot_every=5, sharpness_every=50),
               (PairRun("small", 0.03, 20), PairRun("large", 0.1, 20))),
        Preset("double-torus-momentum", "Double torus (momentum 0.9)", f"{PAPER}, 3-D toy, double torus, momentum",
               _TORUS, "teacher-2d", "double-torus", "mse",
               _defaults(width=4096, optimizer="momentum", momentum=0.9, lr=0.00125, epochs=20, snapshot_every=5,
                         sharpness_every=50),
               (PairRun("small", 0.001, 20), PairRun("large", 0.00125, 20))),
        # The paper's MNIST runs make 1180 updates in 20 epochs (60,000 images, batch 1024); the digits set
        # has 1257 training images, 10 updates an epoch at batch 128, so its runs are 10x as many epochs
        # (2000 updates; Adam's small rate twice that, as the paper's 40 vs 20 epochs). The large rates
        # break the 2-sphere after ~800 (Adam) and ~1200 (SGD) updates. Betti numbers and sharpness once
        # an epoch, as the paper measures them.
        Preset("digits", "Digits, 2-sphere init (SGD)", f"{PAPER}, high-dimensional (MNIST recipe on 8x8 digits), SGD",
               _SPHERE, "digits", "sphere", "cross-entropy",
               _defaults(width=256, lr=0.5, epochs=200, snapshot_every=10, sharpness_every=10),
               (PairRun("small", 0.01, 200), PairRun("large", 0.5, 200))),
        Preset("digits-adam", "Digits, 2-sphere init (Adam)", f"{PAPER}, high-dimensional (MNIST recipe on 8x8 digits), Adam",
               _SPHERE, "digits", "sphere", "cross-entropy",
               _defaults(width=256, optimizer="adam", lr=1e-3, epochs=200, snapshot_every=10, sharpness_every=10),
               (PairRun("small", 1e-5, 400), PairRun("large", 1e-3, 200))),
        Preset("mnist", "MNIST from a local file (SGD)", f"{PAPER}, high-dimensional, MNIST, SGD", _MNIST,
               "mnist", "sphere", "cross-entropy",
               _defaults(lr=0.5, epochs=20, batch_size=1024, snapshot_every=10, sharpness_every=59),
               (PairRun("small", 0.01, 20), PairRun("large", 0.5, 20))),
    ]
}


class RunConfig(BaseModel):
    """A run request; unknown fields are refused so a typo never silently trains the defaults.

    Strict types: JSON ``true`` is not a width of 1, nor "3" an epoch count. Rules between fields are
    validators of the later field (reading the earlier ones from ``info.data``), so the error's loc names
    the field the form shows it next to."""

    model_config = ConfigDict(extra="forbid", strict=True)

    preset: str
    width: int
    lr: float
    optimizer: Literal["sgd", "momentum", "adam"]
    momentum: float
    batch_size: int
    epochs: int
    seed: int
    snapshot_every: int
    sharpness_every: int
    sharpness_subset: int
    data_path: str | None = Field(None, validate_default=True)  # the mnist preset requires it
    optimizer_state_in_neuron: bool = False

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; choose one of {', '.join(PRESETS)}")
        return value

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError("lr must be > 0 and finite")
        return value

    @field_validator(*INT_RANGES)
    @classmethod
    def _in_range(cls, value: int, info: ValidationInfo) -> int:
        low, high = INT_RANGES[info.field_name]
        if not low <= value <= high:
            raise ValueError(f"{info.field_name} must be between {low} and {high}")
        return value

    @field_validator("momentum")
    @classmethod
    def _momentum(cls, value: float, info: ValidationInfo) -> float:
        if not 0 <= value < 1:
            raise ValueError("momentum must be in [0, 1)")
        preset, optimizer = PRESETS.get(info.data.get("preset", "")), info.data.get("optimizer")
        # The form sends every field: a momentum preset's default (or 0) is unused with another optimizer,
        # not a mistake; any other value would silently be ignored by the worker.
        if preset and optimizer not in (None, "momentum") and value not in (0, preset.defaults["momentum"]):
            raise ValueError("momentum applies to the momentum optimizer only")
        return value

    @field_validator("data_path")
    @classmethod
    def _data_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        preset = PRESETS.get(info.data.get("preset", ""))
        if preset and preset.data == "mnist" and not value:
            raise ValueError("data_path is required for the mnist preset (an IDX directory or a .npz file)")
        if preset and preset.data != "mnist" and value:
            raise ValueError("data_path applies to the mnist preset only")
        return value

    @field_validator("optimizer_state_in_neuron")
    @classmethod
    def _adam_state(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("optimizer") not in (None, "adam"):
            raise ValueError("optimizer_state_in_neuron applies to the adam optimizer only")
        return value


def build_config(request: dict[str, Any]) -> RunConfig:
    """The preset's defaults overridden by the request; raises pydantic.ValidationError on bad input."""
    preset = PRESETS.get(request.get("preset")) if isinstance(request.get("preset"), str) else None
    # An unknown preset still gets complete defaults, so its error is the only one reported.
    base = (preset or PRESETS["figure-eight"]).defaults
    return RunConfig.model_validate(base | request)


def pair_configs(request: dict[str, Any]) -> list[RunConfig]:
    """The preset's paper pair: its small-lr and large-lr runs with everything else shared.

    The paper's epochs apply unless the request sets ``epochs`` (a short look at both phases)."""
    base = build_config(request)
    return [
        build_config(base.model_dump() | {"lr": run.lr, "epochs": request.get("epochs", run.epochs)})
        for run in PRESETS[base.preset].pair
    ]


def _int_field(name: str, label: str, unit: str, help: str) -> dict[str, Any]:
    low, high = INT_RANGES[name]
    return {"name": name, "label": label, "unit": unit, "type": "int", "min": low, "max": high, "help": help}


FIELDS: list[dict[str, Any]] = [
    _int_field("width", "Width", "neurons", "hidden units N: points in the neuron cloud"),
    {"name": "lr", "label": "Learning rate", "unit": "eta", "type": "float", "min": 0, "max": None,
     "help": "must be > 0; compare with 1/lambda_max (the topological critical point)"},
    {"name": "optimizer", "label": "Optimizer", "unit": "", "type": "choice", "choices": ["sgd", "momentum", "adam"],
     "help": "all are permutation-equivariant"},
    {"name": "momentum", "label": "Momentum", "unit": "beta", "type": "float", "min": 0, "max": 1,
     "help": "momentum optimizer only, in [0, 1)"},
    _int_field("batch_size", "Batch size", "examples", "minibatch size; the training-set size gives full-batch GD"),
    _int_field("epochs", "Epochs", "epochs", ""),
    _int_field("seed", "Seed", "", "same seed and config give identical snapshots on CPU"),
    _int_field("snapshot_every", "Snapshot every", "steps",
               "one neuron snapshot (and analysed frame) per this many optimiser steps"),
    _int_field("sharpness_every", "Sharpness every", "steps",
               "top Hessian eigenvalue by Lanczos on Hessian-vector products; 0 = never"),
    _int_field("sharpness_subset", "Sharpness subset", "examples",
               "fixed training examples the sharpness is measured on (all of them when fewer)"),
    {"name": "data_path", "label": "Data file", "unit": "path", "type": "str",
     "help": "mnist preset only: a directory of IDX files or a .npz with x_train, y_train, x_test, y_test"},
    {"name": "optimizer_state_in_neuron", "label": "Adam state in neuron", "unit": "", "type": "bool",
     "help": "adam optimizer only: append Adam's (m, v) to each neuron vector, as the theory's neuron for Adam"},
]
