"""Training data for the presets: the paper's teacher networks, scikit-learn's digits, MNIST from a file."""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


class DataError(ValueError):
    """A data file that is missing or malformed; the message says which and why."""


@dataclass(frozen=True)
class Dataset:
    x_train: torch.Tensor
    y_train: torch.Tensor  # float targets (MSE) or int64 class labels (cross-entropy)
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def in_dim(self) -> int:
        return int(self.x_train.shape[1])


def _split(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, train_fraction: float = 0.7) -> Dataset:
    order = rng.permutation(len(x))
    cut = int(round(train_fraction * len(x)))
    train, test = order[:cut], order[cut:]
    y_dtype = torch.int64 if y.dtype.kind in "iu" else torch.float32
    return Dataset(
        x_train=torch.tensor(x[train], dtype=torch.float32),
        y_train=torch.tensor(y[train], dtype=y_dtype),
        x_test=torch.tensor(x[test], dtype=torch.float32),
        y_test=torch.tensor(y[test], dtype=y_dtype),
    )


def teacher_data(in_dim: int, seed: int, n_points: int = 5000, hidden: int = 128) -> Dataset:
    """y = sum_k a_k sigmoid(w_k . x), w_k ~ N(0, 1), a_k ~ 0.6 N(0, 1), x ~ N(0, 2^2); split 70/30."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0, size=(hidden, in_dim))
    a = 0.6 * rng.normal(0.0, 1.0, size=hidden)
    x = rng.normal(0.0, 2.0, size=(n_points, in_dim))
    y = (1.0 / (1.0 + np.exp(-(x @ w.T)))) @ a
    return _split(x, y[:, None], rng)


def digits_data(seed: int) -> Dataset:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: real data, no download

    digits = load_digits()
    x = digits.data.astype(np.float64) / 16.0  # pixel intensities 0..16 -> 0..1
    return _split(x, digits.target.astype(np.int64), np.random.default_rng(seed))


def mnist_data(path: str) -> Dataset:
    """MNIST-style data from a .npz (x_train, y_train, x_test, y_test) or a directory of IDX files."""
    source = Path(path).expanduser()
    if not source.exists():
        raise DataError(f"data file not found: {source}")
    if source.is_dir():
        arrays = {
            "x_train": _read_idx(_idx_file(source, "train-images")),
            "y_train": _read_idx(_idx_file(source, "train-labels")),
            "x_test": _read_idx(_idx_file(source, "t10k-images")),
            "y_test": _read_idx(_idx_file(source, "t10k-labels")),
        }
    elif source.suffix == ".npz":
        try:
            with np.load(source, allow_pickle=False) as npz:
                missing = {"x_train", "y_train", "x_test", "y_test"} - set(npz.files)
                if missing:
                    raise DataError(f"{source} lacks arrays {sorted(missing)} (needs x_train, y_train, x_test, y_test)")
                arrays = {name: npz[name] for name in ("x_train", "y_train", "x_test", "y_test")}
        except (OSError, ValueError) as exc:
            raise DataError(f"{source} is not a readable .npz file: {exc}") from exc
    else:
        raise DataError(f"{source}: expected a .npz file or a directory of IDX files")
    return _mnist_tensors(arrays, source)


def _mnist_tensors(arrays: dict[str, np.ndarray], source: Path) -> Dataset:
    def images(name: str) -> np.ndarray:
        x = arrays[name]
        if x.ndim < 2 or x.shape[0] == 0:
            raise DataError(f"{source}: {name} must have shape (n, ...) with n > 0, got {x.shape}")
        x = x.reshape(len(x), -1).astype(np.float64)
        return x / 255.0 if x.max() > 1.0 else x

    def labels(name: str, n: int) -> np.ndarray:
        y = arrays[name].reshape(-1)
        if y.dtype.kind not in "iu" or len(y) != n:
            raise DataError(f"{source}: {name} must hold {n} integer labels, got {len(y)} of dtype {y.dtype}")
        if y.min() < 0 or y.max() > 9:
            raise DataError(f"{source}: {name} labels must be digits 0..9")
        return y.astype(np.int64)

    x_train, x_test = images("x_train"), images("x_test")
    if x_train.shape[1] != x_test.shape[1]:
        raise DataError(f"{source}: train and test images differ in size ({x_train.shape[1]} vs {x_test.shape[1]})")
    return Dataset(
        x_train=torch.tensor(x_train, dtype=torch.float32),
        y_train=torch.tensor(labels("y_train", len(x_train))),
        x_test=torch.tensor(x_test, dtype=torch.float32),
        y_test=torch.tensor(labels("y_test", len(x_test))),
    )


def _idx_file(directory: Path, stem: str) -> Path:
    for candidate in sorted(directory.iterdir()):
        if candidate.name.startswith(stem):
            return candidate
    raise DataError(f"{directory}: no IDX file starting with {stem!r}")


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4")}


def _read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    n_dims = raw[3]
    header_end = 4 + 4 * n_dims
    if len(raw) < header_end:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{n_dims}I", raw[4:header_end])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header_end != expected:
        raise DataError(f"{path}: IDX body has {len(raw) - header_end} bytes, shape {shape} needs {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
