import gzip
import struct

import numpy as np
import pytest
import torch

from worker.data import DataError, digits_data, mnist_data, teacher_data
from worker.model import NeuronMLP, _double_torus_sdf, initial_neurons
from worker.presets import build_config
from worker.train import neuron_matrix, neuron_reader, train


class ListSink:
    def __init__(self, stop_after: int | None = None) -> None:
        self.snapshots: list[tuple[int, int, np.ndarray, dict]] = []
        self.stop_after = stop_after

    def snapshot(self, step, epoch, neurons, metrics):
        self.snapshots.append((step, epoch, neurons, metrics))

    def should_stop(self):
        return self.stop_after is not None and len(self.snapshots) >= self.stop_after


def test_figure_eight_initialisation_is_the_papers_curve():
    points = initial_neurons("figure-eight", 1024, 2, np.random.default_rng(0))
    assert points.shape == (1024, 2)
    assert -2.1 <= points[:, 0].min() < -2.09 and 2.09 > -points[:, 0].max() > 1.9 - 0.01
    assert points[:, 1].min() < -0.99 and points[:, 1].max() > 0.99
    # On the curve: with w = 0.1 sin t - 2, a = sin 2t = 2 sin t cos t, so a^2 = 4 s^2 (1 - s^2), s = (w + 2) / 0.1.
    s = (points[:, 0] + 2) / 0.1
    np.testing.assert_allclose(points[:, 1] ** 2, 4 * s**2 * (1 - s**2), atol=1e-9)


def test_two_circles_and_double_torus_and_sphere():
    circles = initial_neurons("two-circles", 1000, 2, np.random.default_rng(0))
    w = (circles[:, 0] + 2) / 0.1
    upper = circles[:, 1] > 0
    np.testing.assert_allclose(np.hypot(w[upper], circles[upper, 1] - 1.2), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.hypot(w[~upper], circles[~upper, 1] + 1.2), 1.0, atol=1e-9)
    assert upper.sum() == 500

    torus = initial_neurons("double-torus", 4096, 3, np.random.default_rng(0))
    assert torus.shape == (4096, 3) and np.isfinite(torus).all()
    assert torus[:, 0].max() - torus[:, 0].min() < 0.4  # first coordinate squeezed by 0.1
    assert _double_torus_sdf(np.array([[0.8, 0.0, 0.0], [-0.8, 0.0, 0.0]])).min() > 0  # the two holes
    assert _double_torus_sdf(np.array([[0.0, 0.0, 0.0]]))[0] < 0  # the two tori are joined in the middle

    sphere = initial_neurons("sphere", 300, 74, np.random.default_rng(0))
    np.testing.assert_allclose(np.linalg.norm(sphere, axis=1), 1.0, atol=1e-9)
    assert np.linalg.matrix_rank(sphere, tol=1e-8) == 3


def test_teacher_and_digits_data():
    data = teacher_data(in_dim=1, seed=0)
    assert (len(data.x_train), len(data.x_test)) == (3500, 1500)
    assert data.y_train.shape == (3500, 1) and data.y_train.dtype == torch.float32
    assert 1.5 < float(data.x_train.std()) < 2.5
    digits = digits_data(seed=0)
    assert digits.in_dim == 64 and digits.y_train.dtype == torch.int64
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert float(digits.x_train.max()) == 1.0


def _idx(array: np.ndarray, type_code: int = 0x08) -> bytes:
    return bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def test_mnist_loader_reads_npz_and_idx_written_here(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=20, dtype=np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=images[:15], y_train=labels[:15], x_test=images[15:], y_test=labels[15:])
    data = mnist_data(str(tmp_path / "mnist.npz"))
    assert data.in_dim == 784 and len(data.x_train) == 15 and len(data.y_test) == 5
    np.testing.assert_allclose(data.x_train[0].numpy(), images[0].reshape(-1) / 255.0, rtol=1e-6)

    idx_dir = tmp_path / "idx"
    idx_dir.mkdir()
    (idx_dir / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images[:15])))
    (idx_dir / "train-labels-idx1-ubyte").write_bytes(_idx(labels[:15]))
    (idx_dir / "t10k-images-idx3-ubyte").write_bytes(_idx(images[15:]))
    (idx_dir / "t10k-labels-idx1-ubyte").write_bytes(_idx(labels[15:]))
    from_idx = mnist_data(str(idx_dir))
    np.testing.assert_array_equal(from_idx.x_train.numpy(), data.x_train.numpy())
    np.testing.assert_array_equal(from_idx.y_test.numpy(), labels[15:])


def test_mnist_loader_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="not found"):
        mnist_data(str(tmp_path / "missing.npz"))
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((2, 4)))
    with pytest.raises(DataError, match="lacks arrays"):
        mnist_data(str(tmp_path / "partial.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        mnist_data(str(tmp_path / "junk.npz"))
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
        (bad / name).write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="bad magic"):
        mnist_data(str(bad))
    (bad / "train-images").write_bytes(_idx(np.zeros((3, 2, 2), np.uint8))[:-2])
    with pytest.raises(DataError, match="IDX body has"):
        mnist_data(str(bad))


def test_neuron_vector_is_input_row_and_output_column():
    model = NeuronMLP(in_dim=3, width=5, out_dim=2)
    neurons = torch.arange(25, dtype=torch.float32).reshape(5, 5)
    model.set_neurons(neurons)
    torch.testing.assert_close(model.w_in[2], neurons[2, :3])
    torch.testing.assert_close(model.w_out[2], neurons[2, 3:])
    optimizer = torch.optim.Adam(model.parameters())
    assert neuron_matrix(model, optimizer, with_state=True).shape == (5, 15)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_snapshots_follow_the_weights_through_optimizer_steps(optimizer):
    """The CPU reader copies from views made once: they must keep tracking the parameters as they train."""
    torch.manual_seed(0)
    model = NeuronMLP(in_dim=2, width=16, out_dim=1)
    opt = {"sgd": lambda p: torch.optim.SGD(p, lr=0.1), "momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
           "adam": lambda p: torch.optim.Adam(p, lr=0.1)}[optimizer](model.parameters())
    read = neuron_reader(model, opt, with_state=False)
    first = read()
    x, y = torch.randn(32, 2), torch.randn(32, 1)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    now = read()
    np.testing.assert_array_equal(now, neuron_matrix(model, opt, with_state=False))
    assert not np.allclose(now, first)
    assert first is not now and not np.shares_memory(now, model.neurons.detach().numpy())


SHORT = {"preset": "figure-eight", "width": 64, "epochs": 1, "snapshot_every": 7, "sharpness_every": 14,
         "sharpness_subset": 128}


def test_same_seed_and_config_give_identical_snapshots():
    runs = []
    for _ in range(2):
        sink = ListSink()
        outcome = train(build_config(SHORT), sink, torch.device("cpu"))
        assert outcome.status == "finished" and outcome.step == 28
        runs.append(sink.snapshots)
    assert [s[0] for s in runs[0]] == [0, 7, 14, 21, 28]
    for (step_a, _, neurons_a, metrics_a), (step_b, _, neurons_b, metrics_b) in zip(*runs):
        assert step_a == step_b and metrics_a == metrics_b
        np.testing.assert_array_equal(neurons_a, neurons_b)
    assert runs[0][2][3]["sharpness"] > 0 and runs[0][2][3]["sharpness_kind"] == "hessian"
    other = ListSink()
    train(build_config(SHORT | {"seed": 1}), other, torch.device("cpu"))
    assert not np.array_equal(other.snapshots[1][2], runs[0][1][2])


def test_divergence_stops_and_keeps_what_came_before():
    sink = ListSink()
    outcome = train(build_config(SHORT | {"lr": 100.0, "snapshot_every": 1}), sink, torch.device("cpu"))
    assert outcome.status == "diverged"
    assert "nan" in outcome.message or "inf" in outcome.message or "non-finite" in outcome.message
    assert len(sink.snapshots) >= 1 and all(np.isfinite(s[2]).all() for s in sink.snapshots)


def test_stop_request_ends_the_run_between_steps():
    sink = ListSink(stop_after=2)
    outcome = train(build_config(SHORT | {"snapshot_every": 1}), sink, torch.device("cpu"))
    assert outcome.status == "stopped" and outcome.step == 1


def test_adam_run_reports_preconditioned_sharpness():
    sink = ListSink()
    train(build_config(SHORT | {"preset": "two-circles", "sharpness_every": 7}), sink, torch.device("cpu"))
    kinds = {s[3].get("sharpness_kind") for s in sink.snapshots[1:]}
    assert kinds == {"preconditioned"}
