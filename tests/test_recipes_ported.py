"""The shipped recipes are MMPretrain's configs, value for value.

``REFERENCE`` holds, per recipe, the MMPretrain config it ports and that config's key values (read from
open-mmlab/mmpretrain's ``configs/``, merged through their ``_base_`` files as MMEngine does), and the top-1 the
MMClassification 1.x model zoo publishes for it (docs, "模型库统计 / 所有模型权重文件", tables ImageNet-1k and
CIFAR-10; /work/shared/references/mmclassification-1.x-docs-zh.txt). Each test resolves the recipe with
``load_recipe`` and checks it against the table. The lr (and weight-decay) curves are compared iteration by
iteration with the closed forms of MMEngine's schedulers (MultiStepLR, StepLR, LinearLR, ConstantLR, PolyLR,
CosineAnnealingLR), written out below.

Where a recipe cannot say what the config says, the table says so in ``inexact`` (and the recipe in a
``NOT EXACT`` comment): torchvision's AutoAugment, ViT's drop-path, RegNet's precise BN, MobileOne's
progressive resizing, and MMEngine's decay schedule of groups without decay.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from clsctl.engine.optim import LrSchedule, auto_lr_scale, build_optimizer, param_groups
from clsctl.recipe import load_recipe, validate_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"

# --------------------------------------------------------------------------- the reference values

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # 123.675/255, ..., 58.395/255, ...
RRC_BILINEAR = {"type": "random_resized_crop", "size": 224, "scale": (0.08, 1.0), "ratio": (0.75, 4 / 3),
                "interpolation": "bilinear"}
FLIP = {"type": "random_horizontal_flip", "prob": 0.5}
BS32_TRAIN = [RRC_BILINEAR, FLIP]
BS32_VAL = [{"type": "resize_edge", "size": 256, "edge": "short"}, {"type": "center_crop", "size": 224}]
ERASE = {"type": "random_erasing", "scale": (0.02, 1 / 3), "ratio": (0.3, 10 / 3), "value": "random", "box": "clip"}
SWIN_TRAIN = [{**RRC_BILINEAR, "interpolation": "bicubic"}, FLIP,
              # policies='timm_increasing', num_policies=2, magnitude_level=9, total_level=10, magnitude_std=0.5,
              # hparams pad_val=round(mean), interpolation='bicubic'
              {"type": "rand_augment", "policy": "timm_increasing", "num_ops": 2, "magnitude": 9,
               "num_magnitude_bins": 11, "magnitude_std": 0.5, "interpolation": "bicubic", "fill": (124, 116, 104)},
              {**ERASE, "prob": 0.25}]
SWIN_VAL = [{"type": "resize_edge", "size": 256, "edge": "short", "interpolation": "bicubic"},
            {"type": "center_crop", "size": 224}]
MIX = [("mixup", 0.8), ("cutmix", 1.0)]  # train_cfg augments Mixup(alpha=0.8), CutMix(alpha=1.0), no probs

SGD_256 = {"type": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "nesterov": False}
MULTISTEP_100 = [("multistep", {"milestones": [30, 60, 90], "gamma": 0.1})]
ADAMW_SWIN = {"type": "adamw", "lr": 5e-4 * 1024 / 512, "weight_decay": 0.05, "betas": (0.9, 0.999), "eps": 1e-8}
SWIN_KEYS = {"*.absolute_pos_embed": 0.0, "*.relative_position_bias_table": 0.0}
# MMPretrain's '.cls_token' / '.pos_embed' are torchvision's names below; torchvision's attention keeps q, k, v
# biases in one `in_proj_bias` tensor (MMPretrain: qkv.bias, so bias_decay_mult 0 covers it).
VIT_KEYS = {**SWIN_KEYS, "class_token": 0.0, "encoder.pos_embedding": 0.0, "*.in_proj_bias": 0.0}
WARMUP20_COSINE = [("linear_iter", {"start": 1e-3, "end": 20}),
                   ("cosine_epoch", {"begin": 20, "end": 300, "eta_min": 1e-5})]


def resnet(depth: int, top1: float) -> dict[str, Any]:
    return dict(config=f"configs/resnet/resnet{depth}_8xb32_in1k.py", top1=top1, model=f"resnet{depth}",
                kwargs={"zero_init_residual": True}, devices=8, per_device=32, epochs=100, optim=SGD_256,
                schedule=MULTISTEP_100, train=BS32_TRAIN, val=BS32_VAL)


REFERENCE: dict[str, dict[str, Any]] = {
    "resnet18": resnet(18, 69.90),
    "resnet34": resnet(34, 73.62),
    "resnet50": resnet(50, 76.55),
    "resnet101": resnet(101, 77.97),
    "resnet152": resnet(152, 78.48),
    "resnext50_32x4d": {**resnet(50, 77.90), "config": "configs/resnext/resnext50-32x4d_8xb32_in1k.py",
                        "model": "resnext50_32x4d"},
    "se_resnet50": {**resnet(50, 77.74), "config": "configs/seresnet/seresnet50_8xb32_in1k.py",
                    "model": "se_resnet50", "epochs": 140,
                    "schedule": [("multistep", {"milestones": [40, 80, 120], "gamma": 0.1})]},
    **{f"shufflenet_v{v}_1x": dict(
        config=f"configs/shufflenet_v{v}/shufflenet-v{v}-1x_16xb64_in1k.py", top1=top1, model=model,
        devices=16, per_device=64, epochs=300,
        optim={"type": "sgd", "lr": 0.5, "momentum": 0.9, "weight_decay": 4e-5}, norm_decay=0.0,
        schedule=[("constant_iter", {"factor": 0.1, "end": 5000}), ("poly_iter", {"begin": 5000, "eta_min": 0.0})],
        steps_per_epoch=50, train=BS32_TRAIN, val=BS32_VAL)
       for v, model, top1 in ((1, "shufflenet_v1_1_0x", 68.13), (2, "shufflenet_v2_x1_0", 69.55))},
    "mobilenet_v2": dict(
        config="configs/mobilenet_v2/mobilenet-v2_8xb32_in1k.py", top1=71.86, model="mobilenet_v2",
        kwargs={"dropout": 0.0}, devices=8,
        per_device=32, epochs=300, optim={"type": "sgd", "lr": 0.045, "momentum": 0.9, "weight_decay": 4e-5},
        schedule=[("step", {"step_size": 1, "gamma": 0.98})], train=BS32_TRAIN, val=BS32_VAL),
    **{f"mobilenet_v3_{v}": dict(
        config=f"configs/mobilenet_v3/mobilenet-v3-{v}_8xb128_in1k.py", top1=top1, model=f"mobilenet_v3_{v}",
        devices=8, per_device=128, epochs=600,
        optim={"type": "rmsprop", "lr": 0.064, "alpha": 0.9, "momentum": 0.9, "eps": 0.0316, "weight_decay": 1e-5},
        schedule=[("step", {"step_size": 2, "gamma": 0.973})],
        train=[RRC_BILINEAR, FLIP, {"type": "auto_augment", "policy": "imagenet", "fill": (124, 116, 104)}, {**ERASE, "prob": 0.2}],
        val=BS32_VAL,
        inexact=["torchvision's AutoAugment implementation of the ImageNet policy"])
       for v, top1 in (("large", 73.49), ("small", 66.68))},
    "efficientnet_b0": {**resnet(0, 76.74), "config": "configs/efficientnet/efficientnet-b0_8xb32_in1k.py",
                        "model": "efficientnet_b0", "kwargs": {"dropout": 0.0, "stochastic_depth_prob": 0.0},
                        "train": [{"type": "efficientnet_random_crop", "size": 224, "min_covered": 0.1,
                                   "crop_padding": 32, "interpolation": "bicubic"}, FLIP],
                        "val": [{"type": "efficientnet_center_crop", "size": 224, "crop_padding": 32,
                                 "interpolation": "bicubic"}],
                        "inexact": ["the published top-1 is of weights converted from TensorFlow",
                                    "TensorFlow-style padding and BatchNorm eps 1e-3 of MMPretrain's B0"]},
    "regnetx_400mf": dict(
        config="configs/regnet/regnetx-400mf_8xb128_in1k.py", top1=72.56, model="regnet_x_400mf", devices=8,
        per_device=128, epochs=100,
        optim={"type": "sgd", "lr": 0.8, "momentum": 0.9, "weight_decay": 5e-5, "nesterov": True},
        schedule=[("linear_iter", {"start": 0.1, "end": 5}), ("cosine_epoch", {"begin": 5, "end": 100, "eta_min": 0})],
        train=[RRC_BILINEAR, FLIP, {"type": "lighting", "alphastd": 25.5 / 255,  # 25.5 on 0-255 pixels
                                    "eigval": (0.2175, 0.0188, 0.0045)}],
        val=BS32_VAL, channel_order="bgr", inexact=["no PreciseBNHook"]),
    "convnext_tiny": dict(
        config="configs/convnext/convnext-tiny_32xb128_in1k.py", top1=82.14, model="convnext_tiny",
        kwargs={"stochastic_depth_prob": 0.1}, devices=32, per_device=128, epochs=300,
        optim={**ADAMW_SWIN, "lr": 4e-3}, norm_decay=0.0, bias_decay=0.0, custom_keys=SWIN_KEYS, clip_grad=5.0,
        schedule=WARMUP20_COSINE, train=SWIN_TRAIN, val=SWIN_VAL, label_smoothing=0.1, batch_augments=MIX,
        ema_momentum=4e-5),
    "swin_tiny": dict(
        config="configs/swin_transformer/swin-tiny_16xb64_in1k.py", top1=81.18, model="swin_tiny", devices=16,
        per_device=64, epochs=300, optim=ADAMW_SWIN, norm_decay=0.0, bias_decay=0.0, custom_keys=SWIN_KEYS,
        clip_grad=5.0, schedule=WARMUP20_COSINE, train=SWIN_TRAIN, val=SWIN_VAL, label_smoothing=0.1,
        batch_augments=MIX),
    **{f"deit_{v}": dict(
        config=f"configs/deit/deit-{v}_4xb256_in1k.py", top1=top1, model=f"deit_{v}", devices=4, per_device=256,
        epochs=300, optim=ADAMW_SWIN, norm_decay=0.0, bias_decay=0.0, custom_keys=VIT_KEYS, clip_grad=5.0,
        schedule=WARMUP20_COSINE, train=SWIN_TRAIN, val=SWIN_VAL, label_smoothing=0.1, batch_augments=MIX)
       for v, top1 in (("small", 80.69), ("tiny", 74.50))},
    "vit_b_16": dict(
        config="configs/vision_transformer/vit-base-p16_pt-32xb128-mae_in1k-224.py", top1=82.37, model="vit_b_16",
        devices=32, per_device=128, epochs=300,
        optim={"type": "adamw", "lr": 1e-4 * 4096 / 256, "weight_decay": 0.3, "betas": (0.9, 0.95), "eps": 1e-8},
        norm_decay=0.0, bias_decay=0.0, custom_keys=VIT_KEYS, schedule=WARMUP20_COSINE, train=SWIN_TRAIN,
        val=SWIN_VAL, label_smoothing=0.1, batch_augments=MIX, ema_momentum=1e-4,
        inexact=["no drop-path (MMPretrain 0.1; torchvision's ViT has none)"]),
    **{f"repvgg_{v}": dict(
        config=f"configs/repvgg/repvgg-{v.upper()}_8xb32_in1k.py", top1=top1, model=f"repvgg_{v}", devices=8,
        per_device=32, epochs=120, optim=SGD_256, bias_decay=0.0,
        # branch_3x3.norm, branch_1x1.norm, branch_norm.bias
        custom_keys={"*rbr_dense.bn.*": 0.0, "*rbr_1x1.bn.*": 0.0, "*rbr_identity.bias": 0.0},
        schedule=[("cosine_iter", {"begin": 0, "end": 120, "eta_min": 0.0})], train=BS32_TRAIN, val=BS32_VAL)
       for v, top1 in (("a0", 72.37), ("b0", 75.27))},
    "mobileone_s0": dict(
        config="configs/mobileone/mobileone-s0_8xb32_in1k.py", top1=71.34, model="mobileone_s0", devices=8,
        per_device=32, epochs=300, optim=SGD_256, norm_decay=0.0, label_smoothing=0.1,
        schedule=[("linear_iter", {"start": 1e-3, "end": 5}),
                  ("cosine_epoch", {"begin": 5, "end": 300, "eta_min": 1e-6})],
        decay_schedule=[("cosine_epoch", {"begin": 0, "end": 300, "eta_min": 1e-5})],
        train=BS32_TRAIN, val=BS32_VAL, ema_momentum=5e-4,
        inexact=["progressive resizing 160/192/224 px (SwitchTrainAugHook) is 224 px throughout",
                 "MMEngine also anneals zero-decay groups towards 1e-5"]),
    "resnet18_cifar10": dict(
        config="configs/resnet/resnet18_8xb16_cifar10.py", top1=94.82, model="resnet18",
        kwargs={"cifar_stem": True, "zero_init_residual": True}, devices=8, per_device=16, epochs=200,
        optim=SGD_256, schedule=[("multistep", {"milestones": [100, 150], "gamma": 0.1})],
        train=[{"type": "random_crop", "size": 32, "padding": 4}, FLIP], val=[],
        mean=(125.307 / 255, 122.961 / 255, 113.8575 / 255), std=(51.5865 / 255, 50.847 / 255, 51.255 / 255)),
}
# Not ported from MMPretrain: the project's own quick start.
NOT_PORTED = {"quickstart"}

# --------------------------------------------------------------------------- MMEngine's schedulers, closed form


def mmengine_value(entries: list[tuple[str, dict[str, Any]]], it: int, spe: int, total: int, base: float) -> float:
    """The value MMEngine's chained schedulers give at iteration ``it`` (epoch-based ones change at epoch starts;
    ``*_iter`` are the per-iteration ones, LinearLR's ``end`` in epochs with convert_to_iter_based)."""
    value, epoch = base, it // spe
    for kind, kw in entries:
        if kind == "multistep":
            value *= kw["gamma"] ** sum(epoch >= m for m in kw["milestones"])
        elif kind == "step":
            value *= kw["gamma"] ** (epoch // kw["step_size"])
        elif kind == "linear_iter":
            span = kw["end"] * spe
            value *= kw["start"] + (1 - kw["start"]) * min(it, span) / span
        elif kind == "constant_iter":
            value *= kw["factor"] if it < kw["end"] else 1.0
        elif kind == "poly_iter":
            if it >= kw["begin"]:
                value = kw["eta_min"] + (value - kw["eta_min"]) * (1 - (it - kw["begin"]) / (total - kw["begin"]))
        elif kind in ("cosine_epoch", "cosine_iter"):
            now, unit = (epoch, 1) if kind == "cosine_epoch" else (it, spe)
            begin, end = kw["begin"] * unit, kw["end"] * unit
            if now >= begin:
                t = min(now, end) - begin
                value = kw["eta_min"] + (value - kw["eta_min"]) * (1 + math.cos(math.pi * t / (end - begin))) / 2
        else:
            raise AssertionError(kind)
    return value


# --------------------------------------------------------------------------- tests


def test_every_shipped_recipe_is_in_the_table() -> None:
    shipped = {p.stem for p in RECIPES.glob("*.yaml")}
    assert shipped - NOT_PORTED == set(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_recipe_matches_its_reference_config(name: str) -> None:
    ref = REFERENCE[name]
    recipe = load_recipe(RECIPES / f"{name}.yaml")
    text = (RECIPES / f"{name}.yaml").read_text(encoding="utf-8")
    assert ref["config"] in text, "the recipe names the config it ports"
    assert recipe.model.name == ref["model"]
    assert recipe.model.kwargs == ref.get("kwargs", {})
    assert recipe.runtime.epochs == ref["epochs"]
    # Global batch: devices x images per device, which is what lr is meant for (auto_scale_lr base_batch_size).
    assert recipe.data.loader.batch_size == ref["per_device"]
    assert recipe.optim.base_batch_size == ref["devices"] * ref["per_device"]
    assert recipe.optim.accumulate_steps == 1

    optim = recipe.optim.model_dump()
    for key, value in ref["optim"].items():
        assert optim[key] == (value if isinstance(value, str) else pytest.approx(value, rel=1e-12)), key
    rules = recipe.optim.paramwise
    assert rules.norm_decay_mult == ref.get("norm_decay")
    assert rules.bias_decay_mult == ref.get("bias_decay")
    assert rules.flat_decay_mult is None and rules.layer_decay is None
    assert {k: r.decay_mult for k, r in rules.custom_keys.items()} == ref.get("custom_keys", {})
    assert all(r.lr_mult == 1.0 for r in rules.custom_keys.values())
    clip = recipe.optim.clip_grad
    assert (clip.max_norm if clip else None) == ref.get("clip_grad")
    assert clip is None or (clip.type == "norm" and clip.norm_type == 2.0)

    assert recipe.loss.type == "cross_entropy" and recipe.loss.label_smoothing == ref.get("label_smoothing", 0.0)
    assert [(a.type, a.alpha, a.prob) for a in recipe.data.batch_augments] == [
        (kind, alpha, None) for kind, alpha in ref.get("batch_augments", [])]
    if ref.get("ema_momentum") is None:
        assert recipe.ema is None
    else:  # MMEngine's EMAHook momentum m: ema = (1 - m) ema + m weights, from the first step on
        assert 1 - recipe.ema.decay == pytest.approx(ref["ema_momentum"], rel=1e-9)
        assert recipe.ema.warmup is False and recipe.ema.interval == 1

    for split in ("train", "val"):
        steps = [s.model_dump() for s in getattr(recipe.data, split).pipeline]
        assert [s["type"] for s in steps] == [e["type"] for e in ref[split]], split
        for step, expected in zip(steps, ref[split]):
            for key, value in expected.items():
                assert step[key] == (pytest.approx(value) if not isinstance(value, str) else value), (split, key)
    assert recipe.data.mean == pytest.approx(ref.get("mean", IMAGENET_MEAN), abs=5e-5)
    assert recipe.data.std == pytest.approx(ref.get("std", IMAGENET_STD), abs=5e-5)
    assert recipe.data.channel_order == ref.get("channel_order", "rgb")
    if any(not note.startswith("the published") for note in ref.get("inexact", [])):
        assert "NOT EXACT" in _texts(RECIPES / f"{name}.yaml"), "the recipe says what it cannot express"


def _texts(path: Path) -> str:
    """A recipe file's text followed by its bases' texts, recursively."""
    import yaml

    text = path.read_text(encoding="utf-8")
    bases = yaml.safe_load(text).get("base", [])
    for base in [bases] if isinstance(bases, str) else bases:
        text += _texts(path.parent / base)
    return text


def _curve(recipe: Any, spe: int, param: str = "lr") -> list[float]:
    """Per-iteration values of the first parameter group (weight, full decay) as training sets them."""
    optimizer = build_optimizer(nn.Linear(2, 2), recipe.optim)
    schedule = LrSchedule(optimizer, recipe.schedule, spe, recipe.runtime.epochs)
    values = []
    for _ in range(spe * recipe.runtime.epochs):
        values.append(float(optimizer.param_groups[0][param]))
        schedule.step()
    return values


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_schedule_follows_mmengine_iteration_by_iteration(name: str) -> None:
    ref = REFERENCE[name]
    recipe = load_recipe(RECIPES / f"{name}.yaml")
    spe = ref.get("steps_per_epoch", 4)
    total = spe * recipe.runtime.epochs
    lr = ref["optim"]["lr"]
    expected = [mmengine_value(ref["schedule"], it, spe, total, lr) for it in range(total)]
    assert _curve(recipe, spe) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    if "decay_schedule" in ref:
        wd = ref["optim"]["weight_decay"]
        expected = [mmengine_value(ref["decay_schedule"], it, spe, total, wd) for it in range(total)]
        assert _curve(recipe, spe, "weight_decay") == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("gpus", [1, 4])
def test_auto_scale_lr_scales_by_global_batch(name: str, gpus: int) -> None:
    """What `clsctl train R --gpus N --auto-scale-lr` does: lr x (batch per device x N) / base_batch_size."""
    ref = REFERENCE[name]
    recipe = load_recipe(RECIPES / f"{name}.yaml", ["runtime.auto_scale_lr=true"])
    global_batch = recipe.data.loader.batch_size * gpus * recipe.optim.accumulate_steps  # as the trainer counts
    scale = auto_lr_scale(recipe, global_batch)
    assert scale == pytest.approx(ref["per_device"] * gpus / (ref["devices"] * ref["per_device"]))
    optimizer = build_optimizer(nn.Linear(2, 2), recipe.optim, lr_scale=scale)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(
        [ref["optim"]["lr"] * gpus / ref["devices"]] * len(optimizer.param_groups))
    # at the reference's own device count nothing changes
    assert auto_lr_scale(recipe, ref["per_device"] * ref["devices"]) == 1.0


def test_quickstart_takes_auto_scale_lr() -> None:
    recipe = load_recipe(RECIPES / "quickstart.yaml", ["runtime.auto_scale_lr=true"])
    assert auto_lr_scale(recipe, 64 * 4) == 4.0


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_resolved_recipe_round_trips_as_checkpoints_store_it(name: str) -> None:
    recipe = load_recipe(RECIPES / f"{name}.yaml", ["runtime.auto_scale_lr=true"])
    assert validate_recipe(recipe.to_dict()) == recipe  # what `--gpus N` hands its workers, what checkpoints keep


@pytest.mark.slow
@pytest.mark.parametrize("name", ["convnext_tiny", "mobileone_s0"])
def test_ported_recipe_trains_end_to_end_scaled_down(name: str, image_root: Path, tmp_path: Path) -> None:
    """The recipe's own pipeline, batch mixing, EMA, clipping and schedules, on a tiny model and 32 px images."""
    from clsctl.engine.loop import train

    model = {"convnext_tiny": "test_vit", "mobileone_s0": "test_resnet"}[name]
    recipe = load_recipe(RECIPES / f"{name}.yaml", [
        f"model.name={model}", "model.kwargs={}", f"data.train.root={image_root / 'train'}",
        f"data.val.root={image_root / 'val'}", "data.train.pipeline.0.size=32", "data.val.pipeline.0.size=32",
        "data.val.pipeline.1.size=32", "data.loader.batch_size=8", "data.loader.num_workers=0", "runtime.epochs=2",
        "runtime.amp=false", "runtime.log_interval=1", "runtime.auto_scale_lr=true",
        # the recipe's epoch windows, squeezed into two epochs
        *(["schedule.0.end=1", "schedule.1.begin=1", "schedule.1.end=2"] if name == "convnext_tiny" else
          ["schedule.0.end=1", "schedule.1.begin=1", "schedule.1.end=2", "schedule.2.end=2"])])
    result = train(recipe, tmp_path / "run", device="cpu", show_progress=False)
    assert result.epochs == 2 and result.last_checkpoint.is_file()
    assert (tmp_path / "run" / "best_ema.pt").is_file()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in records if "lr" in r]
    top = recipe.optim.lr * 8 / recipe.optim.base_batch_size  # --auto-scale-lr at one process x 8 images
    assert max(lrs) == pytest.approx(top, rel=1e-6) and min(lrs) < top


# --------------------------------------------------------------------------- decay exclusions on real names


def _decay_of(model: nn.Module, recipe: Any) -> dict[str, float]:
    return {name: group["decay_mult"] for group in param_groups(model, recipe.optim) for name in group["names"]}


def test_vit_and_deit_exclusions_on_torchvision_names() -> None:
    from clsctl.models import create_model

    for name in ("deit_small", "vit_b_16"):
        recipe = load_recipe(RECIPES / f"{name}.yaml")
        decay = _decay_of(create_model("test_vit"), recipe)  # torchvision's VisionTransformer, tiny
        free = {n for n, d in decay.items() if d == 0.0}
        assert {"class_token", "encoder.pos_embedding", "conv_proj.bias", "encoder.ln.weight", "heads.head.bias",
                "encoder.layers.encoder_layer_0.self_attention.in_proj_bias",
                "encoder.layers.encoder_layer_0.ln_1.weight"} <= free
        decayed = {n for n, d in decay.items() if d == 1.0}
        assert decayed == {n for n in decay if n.endswith("weight") and ".ln" not in n and n != "encoder.ln.weight"}


def test_swin_and_convnext_exclusions() -> None:
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    from clsctl.models import create_model

    decay = _decay_of(create_model("test_swin"), load_recipe(RECIPES / "swin_tiny.yaml"))
    tables = [n for n in decay if n.endswith("relative_position_bias_table")]
    assert tables and all(decay[n] == 0.0 for n in tables)
    assert all(decay[n] == 0.0 for n in decay if n.endswith(".bias") or "norm" in n)
    assert decay["head.weight"] == 1.0
    # ConvNeXt's layer scale is neither norm nor bias: MMEngine decays it, so does the recipe.
    tiny = ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)], num_classes=3)
    decay = _decay_of(tiny, load_recipe(RECIPES / "convnext_tiny.yaml"))
    assert decay["features.1.0.layer_scale"] == 1.0 and decay["features.1.0.block.0.weight"] == 1.0
    assert decay["features.1.0.block.2.weight"] == 0.0 and decay["features.1.0.block.0.bias"] == 0.0


def test_repvgg_and_mobileone_exclusions() -> None:
    from clsctl.models import create_model

    decay = _decay_of(create_model("test_repvgg"), load_recipe(RECIPES / "repvgg_a0.yaml"))
    identity = [n for n in decay if ".rbr_identity." in n]
    assert identity, "the test model has identity branches"
    for name, mult in decay.items():
        norm_of_branch = re.search(r"rbr_(dense|1x1)\.bn\.", name) is not None
        expected = 0.0 if norm_of_branch or name.endswith(".bias") else 1.0  # identity norm weight keeps decay
        assert mult == expected, name
    decay = _decay_of(create_model("test_mobileone"), load_recipe(RECIPES / "mobileone_s0.yaml"))
    assert all(mult == 0.0 for n, mult in decay.items() if ".bn." in n or "rbr_skip" in n)
    assert all(mult == 1.0 for n, mult in decay.items() if n.endswith("conv.weight"))


# --------------------------------------------------------------------------- README table


def test_readme_table_lists_every_ported_recipe() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, ref in REFERENCE.items():
        row = next((line for line in readme.splitlines() if f"`recipes/{name}.yaml`" in line), None)
        assert row is not None, name
        assert Path(ref["config"]).name in row and f"{ref['top1']:.2f}" in row, row
