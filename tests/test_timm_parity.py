"""Training components against timm's own code: Mixup/CutMix, label smoothing, cosine warm-up, EMA, RandAugment.

Where clsctl deliberately follows MMPretrain instead of timm, the test says so and pins the difference (the same
differences are listed in docs/defaults.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from clsctl.data import mixing
from clsctl.engine.ema import ModelEma
from clsctl.engine.losses import build_loss
from clsctl.engine.optim import LrSchedule
from clsctl.recipe import schema as S

timm = pytest.importorskip("timm")
from timm.data import Mixup  # noqa: E402
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy  # noqa: E402
from timm.scheduler import create_scheduler_v2  # noqa: E402
from timm.utils import ModelEmaV3  # noqa: E402

CLASSES = 5


def _batch(n: int = 6, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, size, size, generator=generator), torch.tensor([0, 1, 2, 3, 4, 1][:n])


@pytest.fixture()
def same_draws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """Make both libraries draw the given lam and box centre; clsctl pairs sample i with n-1-i as timm does.

    timm mixes each sample with the flipped batch; clsctl (as MMPretrain) with a random permutation, here fixed
    to the flip so the two can be compared value for value.
    """
    draws: dict = {"lam": 0.5, "centre": (16, 16)}
    monkeypatch.setattr(mixing, "_beta", lambda alpha, generator: draws["lam"])
    monkeypatch.setattr(torch, "randperm", lambda n, *args, **kwargs: torch.arange(n - 1, -1, -1))
    real_randint = torch.randint

    def centre_draws() -> Iterator[int]:
        while True:
            yield from draws["centre"]

    ours, theirs = centre_draws(), centre_draws()
    monkeypatch.setattr(torch, "randint", lambda low, high=None, size=None, *args, **kwargs: (
        torch.tensor([next(ours)]) if size == (1,) else real_randint(low, high, size, *args, **kwargs)))
    monkeypatch.setattr(np.random, "beta", lambda a, b, size=None: draws["lam"])
    monkeypatch.setattr(np.random, "randint", lambda low, high=None, size=None: next(theirs))
    yield draws


def _timm_mix(images: torch.Tensor, targets: torch.Tensor, *, cutmix: bool,
              smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    mixer = Mixup(mixup_alpha=0.0 if cutmix else 0.8, cutmix_alpha=1.0 if cutmix else 0.0, prob=1.0,
                  label_smoothing=smoothing, num_classes=CLASSES)
    return mixer(images.clone(), targets)


def _ours(images: torch.Tensor, targets: torch.Tensor, config: S.Mixup | S.CutMix) -> tuple[torch.Tensor, torch.Tensor]:
    return mixing.apply_batch_augment(images.clone(), targets, CLASSES, [config], torch.Generator().manual_seed(0))


@pytest.mark.parametrize("lam", [0.3, 0.5, 0.93])
def test_mixup_images_and_targets_equal_timms(same_draws: dict, lam: float) -> None:
    same_draws["lam"] = lam
    images, targets = _batch()
    ours_x, ours_y = _ours(images, targets, S.Mixup(type="mixup", alpha=0.8, prob=1.0))
    timm_x, timm_y = _timm_mix(images, targets, cutmix=False)
    assert torch.allclose(ours_x, timm_x, atol=1e-6)
    assert torch.allclose(ours_y, timm_y, atol=1e-6)
    assert torch.allclose(ours_y.sum(1), torch.ones(len(targets)))


@pytest.mark.parametrize(("lam", "centre"), [(0.75, (16, 16)), (0.75, (3, 30)), (0.4375, (0, 31))])
def test_cutmix_box_and_targets_equal_timms_for_even_cuts(same_draws: dict, lam: float,
                                                           centre: tuple[int, int]) -> None:
    # sqrt(1 - lam) * 32 is 16 or 24: an even cut, where timm's and MMPretrain's box formulas agree.
    same_draws.update(lam=lam, centre=centre)
    images, targets = _batch()
    ours_x, ours_y = _ours(images, targets, S.CutMix(type="cutmix", alpha=1.0, prob=1.0))
    timm_x, timm_y = _timm_mix(images, targets, cutmix=True)
    assert torch.equal(ours_x, timm_x)
    assert torch.allclose(ours_y, timm_y, atol=1e-6)  # lam corrected to the clipped box on both sides
    assert not torch.equal(ours_x, images)


def test_cutmix_odd_cut_follows_mmpretrain_box(same_draws: dict) -> None:
    """Deliberate difference: for an odd cut (15 px here) MMPretrain's box spans ``cy - cut // 2`` to
    ``cy + cut // 2`` (14 px), timm's to ``cy + (cut + 1) // 2`` (15 px). The targets follow each box's area."""
    same_draws.update(lam=1 - (15 / 32) ** 2, centre=(16, 16))
    images, targets = _batch()
    ours_x, ours_y = _ours(images, targets, S.CutMix(type="cutmix", alpha=1.0, prob=1.0))
    timm_x, timm_y = _timm_mix(images, targets, cutmix=True)
    pasted_ours = (ours_x != images).any(1).any(0)
    pasted_timm = (timm_x != images).any(1).any(0)
    assert pasted_ours.any(1).sum() == 14 and pasted_timm.any(1).sum() == 15
    assert ours_y[0, targets[0]] == pytest.approx(1 - 14 * 14 / 1024)
    assert timm_y[0, targets[0]] == pytest.approx(1 - 15 * 15 / 1024)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_label_smoothing_loss_equals_timms(smoothing: float) -> None:
    torch.manual_seed(0)
    logits, targets = torch.randn(8, CLASSES), torch.randint(0, CLASSES, (8,))
    ours = build_loss(S.CrossEntropyLoss(label_smoothing=smoothing), CLASSES)
    assert torch.allclose(ours(logits, targets), LabelSmoothingCrossEntropy(smoothing)(logits, targets), atol=1e-6)


def test_label_smoothing_with_mixup_equals_timms(same_draws: dict) -> None:
    """timm smooths the one-hot targets before mixing (``Mixup(label_smoothing=...)``), clsctl's loss after:
    the smoothing is linear, so the loss is the same."""
    same_draws["lam"] = 0.7
    images, targets = _batch()
    _, ours_y = _ours(images, targets, S.Mixup(type="mixup", alpha=0.8, prob=1.0))
    _, timm_y = _timm_mix(images, targets, cutmix=False, smoothing=0.1)
    logits = torch.randn(len(targets), CLASSES, generator=torch.Generator().manual_seed(1))
    ours = build_loss(S.CrossEntropyLoss(label_smoothing=0.1), CLASSES)(logits, ours_y)
    assert torch.allclose(ours, SoftTargetCrossEntropy()(logits, timm_y), atol=1e-6)


def _clsctl_lrs(schedule: S.CosineSchedule, lr: float, steps_per_epoch: int, epochs: int) -> list[float]:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = LrSchedule(optimizer, schedule, steps_per_epoch, epochs)
    lrs = []
    for _ in range(steps_per_epoch * epochs):
        lrs.append(scheduler.current_lr())
        scheduler.step()
    return lrs


def _timm_lrs(lr: float, steps_per_epoch: int, epochs: int, warmup: int, warmup_lr: float, min_lr: float,
              warmup_prefix: bool = True) -> list[float]:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler, total = create_scheduler_v2(optimizer, sched="cosine", num_epochs=epochs - warmup if warmup_prefix
                                           else epochs, warmup_epochs=warmup, warmup_lr=warmup_lr,
                                           warmup_prefix=warmup_prefix, min_lr=min_lr, step_on_epochs=False,
                                           updates_per_epoch=steps_per_epoch)
    assert total == epochs
    lrs = []
    for update in range(steps_per_epoch * epochs):  # timm's train.py: step_update after every optimizer step
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step_update(num_updates=update + 1)
    return lrs


@pytest.mark.parametrize(("warmup", "min_lr"), [(0, 0.0), (2, 1e-5), (1, 0.0)])
def test_cosine_with_warmup_per_step_lr_equals_timms(warmup: int, min_lr: float) -> None:
    lr, steps, epochs = 0.1, 7, 10
    ours = _clsctl_lrs(S.CosineSchedule(type="cosine", warmup_epochs=warmup, min_lr=min_lr), lr, steps, epochs)
    theirs = _timm_lrs(lr, steps, epochs, warmup, warmup_lr=lr * 0.001, min_lr=min_lr)
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    if warmup:
        assert ours[0] == pytest.approx(lr * 0.001) and ours[warmup * steps] == pytest.approx(lr)


def test_cosine_runs_after_the_warmup_unlike_timms_default() -> None:
    """Deliberate difference (MMPretrain: LinearLR, then CosineAnnealingLR from the warm-up's end): timm's default
    ``warmup_prefix=False`` computes the cosine over the whole run, so after warm-up its lr is already lower."""
    lr, steps, epochs, warmup = 0.1, 7, 10, 2
    ours = _clsctl_lrs(S.CosineSchedule(type="cosine", warmup_epochs=warmup), lr, steps, epochs)
    theirs = _timm_lrs(lr, steps, epochs, warmup, lr * 0.001, 0.0, warmup_prefix=False)
    assert ours[:warmup * steps] == pytest.approx(theirs[:warmup * steps])
    t = warmup * steps
    assert ours[t] == pytest.approx(lr)
    assert theirs[t] == pytest.approx(0.5 * lr * (1 + math.cos(math.pi * t / (steps * epochs))))


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))


def test_ema_updates_equal_model_ema_v3() -> None:
    model = _tiny_net()
    ours, theirs = ModelEma(model, decay=0.9), ModelEmaV3(model, decay=0.9)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(5):
        model.train()
        model(torch.randn(4, 3, 8, 8)).square().mean().backward()  # also moves BN statistics and its counter
        optimizer.step()
        optimizer.zero_grad()
        ours.update()
        theirs.update(model)
    expected = theirs.module.state_dict()
    for key, value in ours.module.state_dict().items():
        assert torch.allclose(value, expected[key], atol=1e-6), key
    assert int(ours.module[1].num_batches_tracked) == 5  # integer buffers copied by both
    assert not torch.allclose(ours.module[0].weight, model[0].weight)  # an average, not a copy


def test_ema_warmup_is_off_by_default_and_its_formula_differs_from_timms() -> None:
    """Both references average without warm-up by default (timm's ``ModelEmaV3``, MMPretrain's ``EMAHook``), and
    so does clsctl. With ``warmup: true`` clsctl uses ``min(decay, (1 + n) / (10 + n))`` (the TensorFlow
    ``num_updates`` rule) where timm's ``use_warmup`` uses ``1 - (1 + n) ** -2/3``."""
    assert S.EmaConfig().warmup is False and ModelEma(_tiny_net()).warmup is False
    ours = ModelEma(_tiny_net(), decay=0.9999, warmup=True)
    theirs = ModelEmaV3(_tiny_net(), decay=0.9999, use_warmup=True)
    ours.updates = 10
    assert ours.current_decay() == pytest.approx(11 / 20)
    assert theirs.get_decay(step=11) == pytest.approx(1 - 11 ** (-2 / 3))


def _torchvision_ops(bins: int, size: int = 32) -> dict[str, float]:
    from clsctl.data.transforms import build_step

    transform = build_step(S.RandAugment(type="rand_augment", num_magnitude_bins=bins))
    space = transform._augmentation_space(transform.num_magnitude_bins, (size, size))
    return {name: float(values[transform.magnitude]) if values.ndim else 0.0
            for name, (values, _) in space.items()}


# torchvision's op name -> timm's ("increasing" variants: stronger with the level, as RandAugment means it,
# and as MMPretrain's timm_increasing policy uses them)
_SAME_OP = {"Rotate": "Rotate", "ShearX": "ShearX", "ShearY": "ShearY", "TranslateX": "TranslateXRel",
            "TranslateY": "TranslateYRel", "Brightness": "BrightnessIncreasing", "Color": "ColorIncreasing",
            "Contrast": "ContrastIncreasing", "Sharpness": "SharpnessIncreasing", "Solarize": "SolarizeIncreasing",
            "Posterize": "PosterizeIncreasing", "AutoContrast": "AutoContrast", "Equalize": "Equalize"}


def test_rand_augment_op_list_vs_timms() -> None:
    """Deliberate difference: clsctl uses torchvision's RandAugment, whose 14 ops are timm's 15 minus Invert and
    SolarizeAdd, plus Identity."""
    from timm.data.auto_augment import rand_augment_transform

    ours = set(_torchvision_ops(11))
    theirs = {op.name for op in rand_augment_transform("rand-m9-inc1", {}).ops}
    assert {_SAME_OP[name] for name in ours - {"Identity"}} == theirs - {"Invert", "SolarizeAdd"}
    assert ours - set(_SAME_OP) == {"Identity"}


def test_rand_augment_magnitude_9_matches_timms_m9() -> None:
    """The default 11 bins make ``magnitude: 9`` the strength of timm's ``rand-m9`` (and MMPretrain's
    ``magnitude_level=9`` of ``total_level=10``): 9/10 of each op's range. torchvision's own default (31 bins)
    would be 9/30, a third of it."""
    import random

    from timm.data.auto_augment import rand_augment_transform

    ours = _torchvision_ops(11)
    theirs = {op.name: op for op in rand_augment_transform("rand-m9-inc1", {}).ops}
    random.seed(0)
    for name in ("Rotate", "ShearX", "ShearY", "Brightness", "Color", "Contrast", "Sharpness"):
        op = theirs[_SAME_OP[name]]
        level = abs(op.level_fn(op.magnitude, op.hparams)[0])
        level = abs(level - 1.0) if "Increasing" in op.name else level  # enhance ops: factor 1 +- level
        assert abs(ours[name]) == pytest.approx(level), name
    op = theirs["TranslateXRel"]
    assert ours["TranslateX"] / 32 == pytest.approx(abs(op.level_fn(op.magnitude, op.hparams)[0]), abs=0.01)
    op = theirs["SolarizeIncreasing"]
    assert ours["Solarize"] == pytest.approx(op.level_fn(op.magnitude, op.hparams)[0], abs=1.0)
    # Posterize differs: torchvision keeps 8 - round(m / (bins - 1) * 4) bits (4 at m9), timm's increasing
    # variant 4 - int(m / 10 * 4) (1 at m9). clsctl keeps torchvision's.
    op = theirs["PosterizeIncreasing"]
    assert (ours["Posterize"], op.level_fn(op.magnitude, op.hparams)[0]) == (4.0, 1)
    assert _torchvision_ops(31)["Rotate"] == pytest.approx(9.0)  # 31 bins: 9/30 of 30 degrees
