"""Tests of clsctl.analysis.label_issues."""

from __future__ import annotations

import numpy as np

from clsctl.analysis.label_issues import find_label_issues, per_class_thresholds


def test_thresholds_are_mean_self_confidence_per_class() -> None:
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6], [0.0, 1.0]])
    assert np.allclose(per_class_thresholds(labels, probs), [0.8, 0.8])
    thresholds = per_class_thresholds(np.array([0, 0]), np.array([[0.6, 0.4], [1.0, 0.0]]))
    assert thresholds[0] == 0.8 and np.isnan(thresholds[1])


def test_confident_learning_by_hand() -> None:
    # thresholds: class 0 = (0.9 + 0.8 + 0.1) / 3 = 0.6, class 1 = (0.7 + 0.9 + 0.45) / 3 ~ 0.683
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1],     # fine
                      [0.8, 0.2],     # fine
                      [0.1, 0.9],     # labelled 0, confidently 1: an issue
                      [0.3, 0.7],     # fine
                      [0.1, 0.9],     # fine
                      [0.55, 0.45]])  # labelled 1, predicted 0 but below class 0's threshold: not confident
    found = find_label_issues(labels, probs)
    assert found.indices.tolist() == [2] and found.suggested.tolist() == [1]
    assert np.allclose(found.self_confidence, [0.9, 0.8, 0.1, 0.7, 0.9, 0.45])


def test_prediction_that_agrees_with_label_is_never_an_issue() -> None:
    # Sample 1 passes class 1's threshold (0.35) with 0.4, but its top prediction (0.6) is its label: cleanlab drops it.
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.95, 0.05], [0.6, 0.4], [0.7, 0.3], [0.6, 0.4]])
    found = find_label_issues(labels, probs)
    assert found.indices.tolist() == []


def test_issues_are_ranked_by_self_confidence() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.1, 0.9], [0.95, 0.05]])
    found = find_label_issues(labels, probs)
    assert found.indices.tolist() == [5, 2] and found.suggested.tolist() == [0, 1]


def test_three_classes_pick_the_most_probable_confident_class() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    probs = np.full((60, 3), 0.05)
    probs[np.arange(60), labels] = 0.9
    probs[[3, 25, 47]] = [[0.05, 0.05, 0.9], [0.9, 0.05, 0.05], [0.05, 0.9, 0.05]]
    probs += rng.uniform(0, 0.01, probs.shape)
    probs /= probs.sum(1, keepdims=True)
    found = find_label_issues(labels, probs)
    assert sorted(zip(found.indices.tolist(), found.suggested.tolist())) == [(3, 2), (25, 0), (47, 1)]
