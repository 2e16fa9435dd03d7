"""run_evaluation / metrics_from_logits: metric values, and samples left out with a -1 target."""

import pytest
import torch
from torch import nn

from clsctl.engine.eval_loop import metrics_from_logits, run_evaluation

LOGITS = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0], [3.0, 0.0, 0.0]])


def test_metrics_from_logits_values() -> None:
    output = metrics_from_logits(LOGITS, torch.tensor([0, 1, 1, 0]), 3)
    assert output.metrics["accuracy/top1"] == pytest.approx(75.0)
    assert output.confusion == [[2, 0, 0], [0, 1, 1], [0, 0, 0]]
    expected_loss = nn.functional.cross_entropy(LOGITS, torch.tensor([0, 1, 1, 0])).item()
    assert output.metrics["loss"] == pytest.approx(expected_loss)


def test_samples_with_target_minus_one_are_left_out() -> None:
    batches = [(LOGITS[:2], torch.tensor([0, -1])), (LOGITS[2:], torch.tensor([2, 0]))]
    output = run_evaluation(nn.Identity(), batches, torch.device("cpu"), 3, keep_scores=True)
    assert output.excluded == 1 and output.kept.tolist() == [True, False, True, True]
    assert output.metrics["accuracy/top1"] == pytest.approx(100.0)  # 3 of 3 kept, not 3 of 4
    assert output.scores.shape == (3, 3) and output.targets.tolist() == [0, 2, 0]
    assert sum(map(sum, output.confusion)) == 3


def test_multilabel_rows_of_minus_one_are_left_out() -> None:
    logits = torch.tensor([[3.0, 0.0, 0.0], [9.0, 9.0, 9.0], [0.0, 3.0, 3.0], [3.0, 0.0, 0.0]])
    targets = torch.tensor([[1, 0, 0], [-1, -1, -1], [0, 1, 1], [1, 0, 0]])
    output = run_evaluation(nn.Identity(), [(logits, targets)], torch.device("cpu"), 3)
    assert output.excluded == 1 and output.kept.tolist() == [True, False, True, True]
    # the kept rows rank every positive first: a perfect mAP
    assert output.metrics["multi-label/mAP"] == pytest.approx(100.0)
    # scored as negatives everywhere, the left-out row would have come first for every class
    scored = run_evaluation(nn.Identity(), [(logits, targets.clamp(min=0))], torch.device("cpu"), 3)
    assert scored.excluded == 0 and scored.metrics["multi-label/mAP"] < 100.0
