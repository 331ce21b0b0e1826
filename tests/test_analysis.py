"""One snapshot in, one frame out: the pure analysis step."""

import numpy as np

from backend.analysis import Reference, analyse, diagrams_from_json, topology_change
from worker.model import figure_eight, sphere_in_subspace


def test_low_dimensional_frames_draw_the_neuron_coordinates_themselves():
    cloud = figure_eight(300, np.random.default_rng(1)).astype(np.float32)
    frame = analyse(cloud, 0, 0.003, {"train_loss": 1.0}, Reference.from_step0(cloud), None, None)
    assert list(frame.payload["coords"]) == ["raw"]
    np.testing.assert_allclose(frame.payload["coords"]["raw"], cloud, atol=1e-5)
    assert frame.metrics["train_loss"] == 1.0 and frame.metrics["knn_mean"] == 1.0
    assert frame.metrics["signature_space"] == "standardised"
    assert (frame.metrics["pb0"], frame.metrics["pb1"]) == (1, 2)  # the figure eight's two loops
    assert (frame.metrics["b0"], frame.metrics["b1"]) == (1, 0)  # filled in at the paper's raw scale
    assert frame.payload["diagrams_standardised"] is not None


def test_high_dimensional_frames_carry_pca_on_the_step0_basis_and_umap():
    sphere = sphere_in_subspace(200, 74, np.random.default_rng(0)).astype(np.float32)
    reference = Reference.from_step0(sphere)
    first = analyse(sphere, 0, 0.01, {}, reference, None, None)
    assert set(first.payload["coords"]) == {"pca", "umap"}
    assert np.array(first.payload["coords"]["pca"]).shape == (200, 3)
    assert np.array(first.payload["coords"]["umap"]).shape == (200, 2)
    assert (first.metrics["b0"], first.metrics["b1"], first.metrics["b2"]) == (1, 0, 1)
    # A rotation inside the sphere's own subspace keeps the PCA basis of step 0: the projection rotates too.
    moved = (sphere * 1.5).astype(np.float32)
    second = analyse(moved, 10, 0.01, {}, reference, (0, sphere), np.array(first.payload["coords"]["umap"]))
    np.testing.assert_allclose(np.array(second.payload["coords"]["pca"]), 1.5 * np.array(first.payload["coords"]["pca"]),
                               atol=1e-3)
    assert second.metrics["interval_from"] == 0
    np.testing.assert_allclose([second.metrics["ratio_min"], second.metrics["ratio_max"]], [1.5, 1.5], rtol=1e-4)
    assert second.metrics["merges"] == 0 and second.metrics["duplicates"] == 0


def test_topology_change_is_zero_for_identical_frames_and_grows_with_a_tear():
    cloud = figure_eight(300, np.random.default_rng(2)).astype(np.float32)
    reference = Reference.from_step0(cloud)
    frame = analyse(cloud, 0, 0.003, {}, reference, None, None)
    assert topology_change(frame.payload, frame.payload) < 1e-12
    torn = cloud.copy()
    torn[torn[:, 1] > 0.5, 1] += 0.5  # open the top of the loops
    other = analyse(torn, 1, 0.003, {}, reference, (0, cloud), None)
    assert topology_change(frame.payload, other.payload) > 0.05
    assert other.metrics["knn_mean"] < 1.0
    diagrams = diagrams_from_json(frame.payload["diagrams"])
    assert np.isinf(diagrams[0][:, 1]).sum() == 1
