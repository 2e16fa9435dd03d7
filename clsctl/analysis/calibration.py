"""Calibration of a classifier's confidence: reliability bins, expected calibration error (ECE) and the
reliability diagram.

Definitions follow Guo et al. 2017 ("On Calibration of Modern Neural Networks") and torchmetrics'
``MulticlassCalibrationError`` (``n_bins=15``, ``norm="l1"``): the confidence of a sample is its top-1
probability; samples fall into equal-width bins ``(i/B, (i+1)/B]`` (a confidence of exactly 0 goes to the first
bin); ECE is the sum over bins of ``|accuracy - mean confidence|`` weighted by the fraction of samples in the bin.
NumPy only, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clsctl.analysis._draw import pyplot, save_figure

DEFAULT_BINS = 15


@dataclass
class ReliabilityBins:
    """Per-bin statistics; bins without samples have count 0 and NaN accuracy and confidence."""

    edges: np.ndarray  # B + 1 bin edges in [0, 1]
    counts: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error in [0, 1]."""
        total = self.counts.sum()
        if total == 0:
            return 0.0
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((gaps * self.counts[filled]).sum() / total)


def reliability_bins(confidences: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_BINS) -> ReliabilityBins:
    """Bin samples by confidence.

    Args:
        confidences: ``(N,)`` top-1 probabilities in [0, 1].
        correct: ``(N,)`` whether the top-1 prediction was right.
        n_bins: Number of equal-width bins.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.ceil(confidences * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(index, weights=correct, minlength=n_bins) / counts
        confidence = np.bincount(index, weights=confidences, minlength=n_bins) / counts
    return ReliabilityBins(edges, counts, accuracy, confidence)


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """ECE in [0, 1] (see the module docstring)."""
    return reliability_bins(confidences, correct, n_bins).ece


def plot_reliability(bins: ReliabilityBins, out: str | Path, title: str | None = None) -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration, with the gap
    shaded and the number of samples per bin below."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.2), dpi=100, sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    width = np.diff(bins.edges)
    left = bins.edges[:-1]
    filled = bins.counts > 0
    top.bar(left[filled], bins.accuracy[filled], width=width[filled], align="edge", color="#4c8dd6",
            edgecolor="#1f4e8c", label="accuracy")
    gap_low = np.minimum(bins.accuracy, bins.confidence)[filled]
    gap = np.abs(bins.accuracy - bins.confidence)[filled]
    top.bar(left[filled], gap, bottom=gap_low, width=width[filled], align="edge", color="#e5534b", alpha=0.35,
            edgecolor="#e5534b", hatch="//", label="gap to confidence")
    top.plot([0, 1], [0, 1], linestyle="--", color="#57606a", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title or f"reliability diagram (ECE {100 * bins.ece:.2f} %)")
    bottom.bar(left, bins.counts, width=width, align="edge", color="#8c959f", edgecolor="#57606a")
    bottom.set_xlabel("confidence (top-1 probability)")
    bottom.set_ylabel("samples")
    fig.tight_layout()
    out = save_figure(fig, out)
    return out
