"""Losses against their definitions and torch's reference implementations."""

import pytest
import torch
from pydantic import TypeAdapter
from torch.nn import functional as F

from clsctl.engine.losses import AsymmetricLoss, FocalLoss, build_loss, is_multi_label
from clsctl.errors import RecipeError
from clsctl.recipe import schema as S

loss_config = TypeAdapter(S.Loss).validate_python


@pytest.fixture()
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0])


def test_cross_entropy_with_class_weights(batch: tuple) -> None:
    logits, targets = batch
    loss = build_loss(loss_config({"type": "cross_entropy", "class_weights": [1, 2, 3, 4]}), 4)
    assert loss(logits, targets) == pytest.approx(float(F.cross_entropy(logits, targets, weight=torch.tensor([1., 2, 3, 4]))))
    with pytest.raises(RecipeError, match="has 2 values but there are 4 classes"):
        build_loss(loss_config({"type": "cross_entropy", "class_weights": [1, 2]}), 4)


def test_focal_reduces_to_cross_entropy_and_down_weights_easy_samples(batch: tuple) -> None:
    logits, targets = batch
    assert FocalLoss(gamma=0)(logits, targets) == pytest.approx(float(F.cross_entropy(logits, targets)), rel=1e-6)
    p_t = F.softmax(logits, 1).gather(1, targets[:, None]).squeeze(1)
    expected = (-(1 - p_t) ** 2 * p_t.log()).mean()
    assert FocalLoss(gamma=2)(logits, targets) == pytest.approx(float(expected), rel=1e-6)
    weighted = build_loss(loss_config({"type": "focal", "gamma": 2, "class_weights": [0.5, 1, 1, 1]}), 4)
    assert weighted(logits, targets) < FocalLoss(gamma=2)(logits, targets)


def test_bce_and_asymmetric_on_multi_hot_targets() -> None:
    torch.manual_seed(1)
    logits = torch.randn(5, 3)
    targets = (torch.rand(5, 3) > 0.5).float()
    bce = build_loss(loss_config({"type": "bce"}), 3)
    assert bce(logits, targets) == pytest.approx(float(F.binary_cross_entropy_with_logits(logits, targets)))
    smoothed = build_loss(loss_config({"type": "bce", "label_smoothing": 0.2}), 3)
    assert smoothed(logits, targets) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(logits, targets * 0.8 + 0.1)))
    # With no focusing and no clipping, ASL is BCE summed over classes.
    plain = AsymmetricLoss(gamma_pos=0, gamma_neg=0, clip=0)(logits, targets)
    assert plain == pytest.approx(float(F.binary_cross_entropy_with_logits(logits, targets) * 3), rel=1e-5)
    # Clipping removes easy negatives entirely: a negative with p <= clip contributes nothing.
    easy = AsymmetricLoss(clip=0.05)(torch.tensor([[-10.0]]), torch.tensor([[0.0]]))
    assert easy == 0
    assert is_multi_label(loss_config({"type": "asymmetric"})) and not is_multi_label(loss_config({"type": "focal"}))


def test_ignored_labels_do_not_count() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    with_ignored = torch.tensor([[1.0, -1.0, 0.0]])
    bce = build_loss(loss_config({"type": "bce"}), 3)
    expected = F.binary_cross_entropy_with_logits(logits[:, [0, 2]], torch.tensor([[1.0, 0.0]]))
    assert bce(logits, with_ignored) == pytest.approx(float(expected))
    asl = AsymmetricLoss(gamma_pos=0, gamma_neg=0, clip=0)
    assert asl(logits, with_ignored) == pytest.approx(float(expected * 2), rel=1e-5)
