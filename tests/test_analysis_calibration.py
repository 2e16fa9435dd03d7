"""Tests of clsctl.analysis.calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis_helpers import assert_picture
from clsctl.analysis.calibration import expected_calibration_error, plot_reliability, reliability_bins


def test_ece_by_hand() -> None:
    confidences = np.array([0.95, 0.95, 0.65, 0.25])
    correct = np.array([True, False, True, False])
    # bins of 0.1: (0.9, 1] holds two at 0.95 with accuracy 0.5; (0.6, 0.7] one right; (0.2, 0.3] one wrong
    expected = 0.5 * abs(0.5 - 0.95) + 0.25 * abs(1 - 0.65) + 0.25 * abs(0 - 0.25)
    assert expected_calibration_error(confidences, correct, n_bins=10) == pytest.approx(expected)
    bins = reliability_bins(confidences, correct, n_bins=10)
    assert bins.counts.tolist() == [0, 0, 1, 0, 0, 0, 1, 0, 0, 2]
    assert bins.accuracy[9] == 0.5 and bins.confidence[9] == pytest.approx(0.95)


def test_bins_are_closed_on_the_right_and_zero_goes_to_the_first() -> None:
    bins = reliability_bins(np.array([0.0, 0.5, 1.0]), np.array([0, 1, 1]), n_bins=2)
    assert bins.counts.tolist() == [2, 1]


def test_perfectly_calibrated_and_empty_inputs() -> None:
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([1, 1])) == 0.0
    assert expected_calibration_error(np.array([]), np.array([])) == 0.0


def test_reliability_diagram_is_a_picture(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    confidences = rng.uniform(0.3, 1.0, 200)
    bins = reliability_bins(confidences, rng.uniform(size=200) < confidences ** 2)
    path = plot_reliability(bins, tmp_path / "r.png")
    assert_picture(path, 300, 300)


@pytest.mark.slow
def test_ece_equals_torchmetrics() -> None:
    torch = pytest.importorskip("torch")
    classification = pytest.importorskip("torchmetrics.classification")
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 4, generator=generator) * 2
    targets = torch.randint(0, 4, (500,), generator=generator)
    probs = logits.softmax(1)
    expected = classification.MulticlassCalibrationError(num_classes=4, n_bins=15, norm="l1")(probs, targets)
    confidences, predicted = probs.max(1)
    ours = expected_calibration_error(confidences.numpy(), (predicted == targets).numpy())
    assert ours == pytest.approx(float(expected), abs=1e-6)
