"""Model EMA: the averaging rule, its warm-up, integer buffers, state round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clsctl.engine.ema import ModelEma


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


def test_update_moves_average_by_one_minus_decay() -> None:
    model = _model()
    ema = ModelEma(model, decay=0.75, warmup=False)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(4.0)
    ema.update()
    torch.testing.assert_close(ema.module[0].weight, start + 0.25 * 4.0)
    ema.update()
    torch.testing.assert_close(ema.module[0].weight, start + (1 - 0.75**2) * 4.0)
    assert not ema.module[0].weight.requires_grad and not ema.module.training


def test_warmup_decay_starts_low_and_is_capped() -> None:
    ema = ModelEma(_model(), decay=0.5, warmup=True)
    assert ema.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    ema.updates = 1000
    assert ema.current_decay() == 0.5
    assert ModelEma(_model(), decay=0.999, warmup=False).current_decay() == 0.999


def test_integer_buffers_are_copied_and_float_buffers_averaged() -> None:
    model = _model()
    ema = ModelEma(model, decay=0.5, warmup=False)
    model.train()
    model(torch.randn(8, 3) + 10)  # moves BatchNorm's running mean and counts one batch
    ema.update()
    assert int(ema.module[1].num_batches_tracked) == 1
    torch.testing.assert_close(ema.module[1].running_mean, 0.5 * model[1].running_mean)


def test_state_dict_round_trip() -> None:
    model = _model()
    ema = ModelEma(model, decay=0.5, warmup=False)
    with torch.no_grad():
        model[0].weight.mul_(3)
    ema.update()
    other = ModelEma(_model(), decay=0.5, warmup=False)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    torch.testing.assert_close(other.module[0].weight, ema.module[0].weight)
