"""Likely label errors from a model's predicted probabilities, confident-learning style.

The method of Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels" (JAIR
2021), as ``cleanlab.filter.find_label_issues(labels, pred_probs, filter_by="confident_learning")`` applies it:

1. Per-class threshold ``t_j``: the mean predicted probability of class ``j`` over the samples labelled ``j``
   (the model's average self-confidence on that class).
2. A sample "confidently belongs" to every class ``j`` with ``p_j >= t_j``; among those it is counted for the one
   with the highest probability (the confident joint).
3. A sample is a likely label error when that class differs from its given label, and the model's top-1 prediction
   differs from its given label too (cleanlab drops issues where the prediction agrees with the label).

Issues are ranked by self-confidence, the probability of the given label (lowest first; cleanlab's default
``rank_by="self_confidence"``). Probabilities from a model trained on the very samples (in-sample) are over-confident
in their given labels, so they understate the issues; out-of-sample (cross-validated) probabilities find more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LabelIssues:
    """Result of :func:`find_label_issues`.

    Attributes:
        indices: Samples that are likely mislabelled, most likely first.
        suggested: The class each of them confidently belongs to (same order).
        self_confidence: Probability of the given label, for every sample.
        thresholds: Per-class thresholds ``t_j`` (NaN for classes without samples).
    """

    indices: np.ndarray
    suggested: np.ndarray
    self_confidence: np.ndarray
    thresholds: np.ndarray


def per_class_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Mean probability of each class over the samples labelled with it (NaN where a class has none)."""
    num_classes = probs.shape[1]
    counts = np.bincount(labels, minlength=num_classes)
    sums = np.bincount(labels, weights=probs[np.arange(len(labels)), labels], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def find_label_issues(labels: np.ndarray, probs: np.ndarray) -> LabelIssues:
    """Likely label errors (see the module docstring).

    Args:
        labels: ``(N,)`` given class indices.
        probs: ``(N, C)`` predicted probabilities (rows sum to 1).
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(labels) != len(probs):
        raise ValueError("probs must be (N, C) with one row per label")
    rows = np.arange(len(labels))
    self_confidence = probs[rows, labels] if len(labels) else np.zeros(0)
    thresholds = per_class_thresholds(labels, probs)
    # A class nobody is labelled with has no threshold: nobody confidently belongs to it. The small tolerance
    # keeps a sample whose probability equals the mean (e.g. a class of one sample) above its own threshold.
    usable = np.where(np.isnan(thresholds), np.inf, thresholds - 1e-6)
    above = probs >= usable[None, :]
    confident = np.where(above, probs, -np.inf).argmax(axis=1)
    flagged = above.any(axis=1) & (confident != labels) & (probs.argmax(axis=1) != labels)
    indices = np.flatnonzero(flagged)
    indices = indices[np.argsort(self_confidence[indices], kind="stable")]
    return LabelIssues(indices, confident[indices], self_confidence, thresholds)
