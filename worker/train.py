"""The training loop, top to bottom: data, model, optimiser, then steps that publish neuron snapshots."""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from worker.data import Dataset, digits_data, mnist_data, teacher_data
from worker.model import NeuronMLP, initial_neurons
from worker.presets import PRESETS, RunConfig
from worker.sharpness import Sharpness, adam_preconditioner, top_hessian_eigenvalue


class Sink(Protocol):
    """Where the loop sends its snapshots (the Redis publisher, or a list in tests)."""

    def snapshot(self, step: int, epoch: int, neurons: np.ndarray, metrics: dict) -> None: ...

    def should_stop(self) -> bool: ...


@dataclass(frozen=True)
class Outcome:
    status: str  # finished | diverged | stopped
    step: int
    message: str = ""


def load_data(config: RunConfig) -> Dataset:
    preset = PRESETS[config.preset]
    if preset.data == "teacher-1d":
        return teacher_data(in_dim=1, seed=config.seed)
    if preset.data == "teacher-2d":
        return teacher_data(in_dim=2, seed=config.seed)
    if preset.data == "digits":
        return digits_data(seed=config.seed)
    return mnist_data(config.data_path or "")


def make_optimizer(config: RunConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    momentum = config.momentum if config.optimizer == "momentum" else 0.0
    return torch.optim.SGD(params, lr=config.lr, momentum=momentum)


def loss_function(config: RunConfig, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if PRESETS[config.preset].loss == "mse":
        return F.mse_loss(outputs, targets)
    return F.cross_entropy(outputs, targets)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return math.ceil(n_train / batch_size)


def neuron_matrix(model: NeuronMLP, optimizer: torch.optim.Optimizer, with_state: bool) -> np.ndarray:
    """A fresh float32 (N, D) copy of the neuron cloud; for Adam optionally with each neuron's (m, v) appended."""
    parts = [model.neurons.detach()]
    if with_state:
        state = optimizer.state.get(model.neurons, {})
        parts += [state.get(moment, torch.zeros_like(model.neurons)) for moment in ("exp_avg", "exp_avg_sq")]
    return torch.cat(parts, dim=1).to("cpu", torch.float32).numpy()


def neuron_reader(model: NeuronMLP, optimizer: torch.optim.Optimizer, with_state: bool) -> Callable[[], np.ndarray]:
    """What takes every snapshot: a fresh copy of the neuron matrix.

    On CPU, without optimizer state, it copies from a numpy view of the parameter made once: torch's
    per-op overhead, paid right after a training step's cold caches, tripled the cost of a snapshot. The
    view stays valid because optimisers update parameters in place."""
    if with_state or model.neurons.device.type != "cpu" or model.neurons.dtype != torch.float32:
        return lambda: neuron_matrix(model, optimizer, with_state)
    view = model.neurons.detach().numpy()
    return view.copy


def train(config: RunConfig, sink: Sink, device: torch.device, on_start: Callable[..., None] | None = None) -> Outcome:
    preset = PRESETS[config.preset]
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    data = load_data(config)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    out_dim = 10 if preset.loss == "cross-entropy" else 1
    n_train = len(x_train)
    per_epoch = steps_per_epoch(n_train, config.batch_size)
    total_steps = per_epoch * config.epochs

    model = NeuronMLP(data.in_dim, config.width, out_dim).to(device)
    init = initial_neurons(preset.init, config.width, data.in_dim + out_dim, rng)
    model.set_neurons(torch.tensor(init, dtype=torch.float32, device=device))
    optimizer = make_optimizer(config, list(model.parameters()))
    params = list(model.parameters())
    read_neurons = neuron_reader(model, optimizer, config.optimizer_state_in_neuron)
    if on_start is not None:
        on_start(total_steps=total_steps, neuron_dim=read_neurons().shape[1])

    # Sharpness is always measured on the same training examples, so its curve is comparable over time.
    sharp_x, sharp_y = x_train[: config.sharpness_subset], y_train[: config.sharpness_subset]
    last_sharpness: Sharpness | None = None
    # Test metrics and sharpness run on their own schedules, whatever the snapshot rate: a forward pass over
    # the test set costs several training steps, so snapshotting every step must not multiply it.
    eval_every = max(1, per_epoch // 2)
    generator = torch.Generator().manual_seed(config.seed)

    def evaluate() -> dict:
        with torch.no_grad():
            outputs = model(x_test)
            metrics = {"test_loss": float(loss_function(config, outputs, y_test))}
            if preset.loss == "cross-entropy":
                metrics["accuracy"] = float((outputs.argmax(dim=1) == y_test).float().mean())
        return metrics

    def sharpness() -> dict:
        nonlocal last_sharpness
        preconditioner = adam_preconditioner(optimizer, params) if config.optimizer == "adam" else None
        last_sharpness = top_hessian_eigenvalue(
            lambda: loss_function(config, model(sharp_x), sharp_y),
            params,
            v0=last_sharpness.vector if last_sharpness is not None else None,
            preconditioner=preconditioner,
        )
        return {
            "sharpness": last_sharpness.value,
            "sharpness_kind": "preconditioned" if last_sharpness.preconditioned else "hessian",
            "sharpness_hvps": last_sharpness.hvps,
        }

    def publish(step: int, epoch: int, train_losses: list[float]) -> bool:
        """Snapshot the neurons; measurements due at this step ride along. False if the weights blew up."""
        neurons = read_neurons()
        if not np.isfinite(neurons).all():
            return False
        metrics: dict = {"lr": config.lr, "train_loss": sum(train_losses) / len(train_losses) if train_losses else None}
        due_eval = step % eval_every == 0 or step == total_steps
        due_sharpness = bool(config.sharpness_every) and step % config.sharpness_every == 0
        if due_eval or due_sharpness:
            model.eval()
            if due_eval:
                metrics |= evaluate()
                if not train_losses:
                    with torch.no_grad():
                        metrics["train_loss"] = float(loss_function(config, model(x_train), y_train))
            if due_sharpness:
                metrics |= sharpness()
            model.train()
        sink.snapshot(step, epoch, neurons, metrics)
        return True

    def snapshot_due(step: int) -> bool:
        return (step % config.snapshot_every == 0 or step == total_steps or step % eval_every == 0
                or (bool(config.sharpness_every) and step % config.sharpness_every == 0))

    step = 0
    publish(step, 0, [])
    train_losses: list[float] = []
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(n_train, generator=generator).to(device)
        for start in range(0, n_train, config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = loss_function(config, model(x_train[batch]), y_train[batch])
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                return Outcome("diverged", step, f"training loss became {loss_value} in step {step + 1}; "
                                                 f"the run is kept up to step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            train_losses.append(loss_value)
            if snapshot_due(step):
                if not publish(step, epoch, train_losses):
                    return Outcome("diverged", step, f"neuron weights became non-finite at step {step}")
                train_losses = []
            if sink.should_stop():
                if train_losses and not publish(step, epoch, train_losses):
                    return Outcome("diverged", step, f"neuron weights became non-finite at step {step}")
                return Outcome("stopped", step, "stopped on request")
    return Outcome("finished", step)
