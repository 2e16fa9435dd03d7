"""Optimizers with per-parameter options, and composed lr / momentum schedules."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from pydantic import TypeAdapter, ValidationError
from torch import nn

from clsctl.engine.optim import (LrSchedule, auto_lr_scale, build_optimizer, entry_factor, key_matches, layer_ids,
                                 param_groups)
from clsctl.errors import RecipeError
from clsctl.models import create_model
from clsctl.recipe import schema as S
from clsctl.recipe import validate_recipe

from helpers import tiny_recipe_dict

OPTIM = TypeAdapter(S.Optimizer)
SCHEDULE = TypeAdapter(S.Schedule)


class Small(nn.Module):
    """conv (weight, bias) -> BatchNorm -> linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)


def _groups_by_name(model: nn.Module, optim: dict) -> dict[str, tuple[float, float]]:
    """Parameter name -> (lr, weight decay) of the group that holds it."""
    out = {}
    for group in param_groups(model, OPTIM.validate_python(optim)):
        for name in group["names"]:
            out[name] = (group["lr"], group["weight_decay"])
    return out


@pytest.mark.parametrize(("optim", "cls", "checks"), [
    ({"type": "sgd", "lr": 0.1, "momentum": 0.8, "nesterov": True}, torch.optim.SGD,
     {"momentum": 0.8, "nesterov": True}),
    ({"type": "adam", "lr": 0.01, "betas": [0.8, 0.9]}, torch.optim.Adam, {"betas": (0.8, 0.9)}),
    ({"type": "adamw", "lr": 0.01, "weight_decay": 0.3}, torch.optim.AdamW, {"weight_decay": 0.3}),
    ({"type": "rmsprop", "lr": 0.01, "alpha": 0.9, "eps": 1e-3, "momentum": 0.9}, torch.optim.RMSprop,
     {"alpha": 0.9, "eps": 1e-3, "momentum": 0.9}),
    ({"type": "torch", "name": "Adagrad", "lr": 0.05, "kwargs": {"lr_decay": 0.01}}, torch.optim.Adagrad,
     {"lr_decay": 0.01}),
    ({"type": "torch", "name": "NAdam", "lr": 0.002}, torch.optim.NAdam, {"lr": 0.002}),
])
def test_each_optimizer_is_built_with_its_options_and_steps(optim: dict, cls: type, checks: dict) -> None:
    model = Small()
    opt = build_optimizer(model, OPTIM.validate_python(optim))
    assert type(opt) is cls
    for key, value in checks.items():
        assert opt.param_groups[0][key] == value, key
    before = model.head.weight.detach().clone()
    model.head(torch.ones(2, 4)).sum().backward()
    opt.step()
    assert not torch.equal(before, model.head.weight)


def test_unknown_torch_optimizer_and_bad_kwargs_are_recipe_errors() -> None:
    with pytest.raises(RecipeError, match="Adagard.*Adagrad"):
        build_optimizer(Small(), OPTIM.validate_python({"type": "torch", "name": "Adagard", "lr": 0.1}))
    with pytest.raises(RecipeError, match="optim.kwargs: torch.optim.Adagrad"):
        build_optimizer(Small(), OPTIM.validate_python({"type": "torch", "name": "Adagrad", "lr": 0.1,
                                                        "kwargs": {"bogus": 1}}))


def test_no_decay_for_norm_and_bias_parameters() -> None:
    got = _groups_by_name(Small(), {"type": "sgd", "lr": 0.1, "weight_decay": 1e-4,
                                    "paramwise": {"norm_decay_mult": 0.0, "bias_decay_mult": 0.5}})
    assert got["conv.weight"] == (0.1, 1e-4) and got["head.weight"] == (0.1, 1e-4)
    assert got["bn.weight"] == (0.1, 0.0) and got["bn.bias"] == (0.1, 0.0)  # norm rule first
    assert got["conv.bias"] == (0.1, 0.5e-4) and got["head.bias"] == (0.1, 0.5e-4)
    # Without paramwise options every parameter shares one group.
    assert len(param_groups(Small(), OPTIM.validate_python({"type": "sgd", "lr": 0.1}))) == 1


def test_custom_prefix_multipliers_longest_prefix_wins() -> None:
    got = _groups_by_name(Small(), {"type": "adamw", "lr": 0.01, "weight_decay": 0.1, "paramwise": {
        "custom_keys": {"head": {"lr_mult": 10}, "head.bias": {"lr_mult": 2, "decay_mult": 0}}}})
    assert got["head.weight"] == pytest.approx((0.1, 0.1))
    assert got["head.bias"] == pytest.approx((0.02, 0.0))
    assert got["conv.weight"] == pytest.approx((0.01, 0.1))


def test_custom_keys_take_glob_patterns_matched_against_the_whole_name() -> None:
    # MMPretrain's keys ('.relative_position_bias_table', 'branch_3x3.norm') match anywhere in a name: a glob.
    got = _groups_by_name(Small(), {"type": "sgd", "lr": 0.1, "weight_decay": 1e-4, "paramwise": {
        "bias_decay_mult": 0.5, "custom_keys": {"*.bias": {"decay_mult": 0}, "b?.*": {"lr_mult": 2},
                                                "*head*": {"decay_mult": 3}}}})
    assert got["conv.bias"] == pytest.approx((0.1, 0.0))  # a key beats the bias rule
    assert got["bn.weight"] == pytest.approx((0.2, 1e-4)) and got["bn.bias"] == pytest.approx((0.1, 0.0))
    assert got["head.weight"] == pytest.approx((0.1, 3e-4))
    assert got["head.bias"] == pytest.approx((0.1, 0.0))  # '*.bias' and '*head*' tie on length: alphabetical first
    assert got["conv.weight"] == pytest.approx((0.1, 1e-4))
    assert key_matches("*.bias", "a.b.bias") and not key_matches("*.bias", "bias")
    assert key_matches("head", "head.bias") and not key_matches("ead", "head.bias")  # no glob: a prefix


def test_layer_wise_lr_decay_on_a_vit() -> None:
    model = create_model("test_vit", num_classes=3)  # 2 transformer blocks
    ids, count = layer_ids(model, [n for n, _ in model.named_parameters()])
    assert count == 2
    assert ids["class_token"] == 0 and ids["conv_proj.weight"] == 0 and ids["encoder.pos_embedding"] == 0
    assert ids["encoder.layers.encoder_layer_0.mlp.0.weight"] == 1
    assert ids["encoder.layers.encoder_layer_1.ln_1.weight"] == 2
    assert ids["heads.head.weight"] == 3 and ids["encoder.ln.weight"] == 3
    got = _groups_by_name(model, {"type": "adamw", "lr": 1e-3, "paramwise": {"layer_decay": 0.5}})
    assert got["class_token"][0] == pytest.approx(1e-3 * 0.5**3)
    assert got["encoder.layers.encoder_layer_0.mlp.0.weight"][0] == pytest.approx(1e-3 * 0.5**2)
    assert got["encoder.layers.encoder_layer_1.mlp.0.weight"][0] == pytest.approx(1e-3 * 0.5)
    assert got["heads.head.weight"][0] == pytest.approx(1e-3)
    with pytest.raises(RecipeError, match="ViT-style"):
        param_groups(Small(), OPTIM.validate_python({"type": "sgd", "lr": 0.1, "paramwise": {"layer_decay": 0.7}}))


def test_auto_scale_factor_multiplies_every_group() -> None:
    opt = build_optimizer(Small(), OPTIM.validate_python(
        {"type": "sgd", "lr": 0.1, "paramwise": {"custom_keys": {"head": {"lr_mult": 2}}}}), lr_scale=0.5)
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx([0.05, 0.1])


# --------------------------------------------------------------------------- schedules


def _lrs(schedule: object, steps_per_epoch: int, epochs: int, lr: float = 1.0,
         optimizer: str = "sgd") -> tuple[list[float], LrSchedule]:
    param = nn.Parameter(torch.zeros(1))
    opt = (torch.optim.SGD([param], lr=lr, momentum=0.9) if optimizer == "sgd"
           else torch.optim.Adam([param], lr=lr, betas=(0.9, 0.999)))
    entries = ([SCHEDULE.validate_python(e) for e in schedule] if isinstance(schedule, list)
               else SCHEDULE.validate_python(schedule))
    sched = LrSchedule(opt, entries, steps_per_epoch, epochs)
    out = []
    for _ in range(steps_per_epoch * epochs):
        out.append(sched.current_lr())
        sched.step()
    return out, sched


def _torch_lrs(make: object, steps: int) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


L = torch.optim.lr_scheduler


@pytest.mark.parametrize(("entry", "make"), [
    ({"type": "cosine", "by_epoch": False, "min_lr": 0.1}, lambda o: L.CosineAnnealingLR(o, T_max=20, eta_min=0.1)),
    ({"type": "multistep", "by_epoch": False, "milestones": [5, 12], "gamma": 0.5},
     lambda o: L.MultiStepLR(o, [5, 12], gamma=0.5)),
    ({"type": "step", "by_epoch": False, "step_size": 3, "gamma": 0.7}, lambda o: L.StepLR(o, 3, gamma=0.7)),
    ({"type": "linear", "by_epoch": False, "start_factor": 0.2, "end_factor": 0.9, "end": 8},
     lambda o: L.LinearLR(o, 0.2, 0.9, total_iters=8)),
    ({"type": "polynomial", "by_epoch": False, "power": 2.0}, lambda o: L.PolynomialLR(o, total_iters=20, power=2.0)),
    ({"type": "exponential", "by_epoch": False, "gamma": 0.9}, lambda o: L.ExponentialLR(o, gamma=0.9)),
    ({"type": "constant", "by_epoch": False, "factor": 0.5, "end": 4}, lambda o: L.ConstantLR(o, 0.5, total_iters=4)),
])
def test_iteration_schedules_match_torch_schedulers(entry: dict, make: object) -> None:
    ours, _ = _lrs([entry], steps_per_epoch=5, epochs=4)
    assert ours == pytest.approx(_torch_lrs(make, 20))


def test_by_epoch_units_and_step_style_changes_at_epoch_boundaries() -> None:
    lrs, _ = _lrs({"type": "multistep", "milestones": [2, 3], "gamma": 0.1}, steps_per_epoch=4, epochs=4)
    assert lrs == pytest.approx([1.0] * 8 + [0.1] * 4 + [0.01] * 4)
    lrs, _ = _lrs({"type": "exponential", "gamma": 0.5}, steps_per_epoch=2, epochs=2)  # per epoch, smooth
    assert lrs == pytest.approx([1.0, 0.5**0.5, 0.5, 0.5**1.5])


def test_warmup_then_cosine_as_a_list_with_begin_and_end() -> None:
    # MMEngine style: linear warm-up for 4 iterations, then cosine by epoch from epoch 1 to the end.
    lrs, _ = _lrs([{"type": "linear", "start_factor": 0.25, "by_epoch": False, "begin": 0, "end": 4},
                   {"type": "cosine", "begin": 1, "min_lr": 0.0}], steps_per_epoch=4, epochs=3)
    assert lrs[:4] == pytest.approx([0.25, 0.4375, 0.625, 0.8125])
    cosine = [0.5 * (1 + math.cos(math.pi * t / 8)) for t in range(8)]
    assert lrs[4:] == pytest.approx(cosine)


def test_single_entry_warmup_in_epochs_or_iterations() -> None:
    by_epochs, _ = _lrs({"type": "cosine", "warmup_epochs": 1, "warmup_start_factor": 0.1}, 4, 3)
    by_iters, _ = _lrs({"type": "cosine", "warmup_iters": 4, "warmup_start_factor": 0.1}, 4, 3)
    assert by_epochs == by_iters
    assert by_epochs[:4] == pytest.approx([0.1, 0.325, 0.55, 0.775])
    assert by_epochs[4] == pytest.approx(1.0) and by_epochs[-1] < 0.05
    entry = SCHEDULE.validate_python({"type": "cosine", "warmup_epochs": 1, "warmup_start_factor": 0.1})
    assert [entry_factor(entry, s, 4, 12) for s in range(12)] == pytest.approx(by_epochs)


def test_entries_outside_their_window_keep_their_value() -> None:
    lrs, _ = _lrs([{"type": "linear", "start_factor": 1.0, "end_factor": 0.1, "by_epoch": False, "begin": 2,
                    "end": 5}], steps_per_epoch=4, epochs=2)
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 0.7, 0.4, 0.1, 0.1, 0.1])


@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_lr_and_momentum_match_torch(anneal: str) -> None:
    entry = {"type": "onecycle", "by_epoch": False, "pct_start": 0.25, "div_factor": 10, "final_div_factor": 100,
             "anneal": anneal}
    param = nn.Parameter(torch.zeros(1))
    ours = LrSchedule(torch.optim.SGD([param], lr=0.5, momentum=0.9), SCHEDULE.validate_python(entry), 10, 2)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5, momentum=0.9)
    ref = L.OneCycleLR(opt, max_lr=0.5, total_steps=20, pct_start=0.25, div_factor=10, final_div_factor=100,
                       anneal_strategy=anneal, base_momentum=0.85, max_momentum=0.95)
    for step in range(20):
        assert ours.current_lr() == pytest.approx(opt.param_groups[0]["lr"]), step
        assert ours.current_momentum() == pytest.approx(opt.param_groups[0]["momentum"]), step
        ours.step()
        opt.step()
        ref.step() if step < 19 else None
    assert ours.current_lr() == pytest.approx(0.5 / 1000)  # past the end: the final value stays


def test_momentum_schedules_for_sgd_and_adam_betas() -> None:
    entry = {"type": "linear", "param": "momentum", "start_factor": 1.0, "end_factor": 0.5, "by_epoch": False}
    _, sgd = _lrs([entry], steps_per_epoch=2, epochs=2)
    assert sgd.current_momentum() == pytest.approx(0.45)  # 0.9 x 0.5 at the end
    assert sgd.current_lr() == 1.0  # lr untouched by a momentum entry
    _, adam = _lrs([entry], steps_per_epoch=2, epochs=2, optimizer="adam")
    assert adam.optimizer.param_groups[0]["betas"] == pytest.approx((0.45, 0.999))
    opt = torch.optim.Adagrad([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(RecipeError, match="momentum schedule needs an optimizer with momentum"):
        LrSchedule(opt, [SCHEDULE.validate_python(entry)], 2, 2)


def test_update_epoch_holds_the_value_for_each_epoch() -> None:
    # MMEngine's CosineAnnealingLR(by_epoch=True) without convert_to_iter_based: one value per epoch.
    per_epoch, _ = _lrs({"type": "cosine", "min_lr": 0.1, "update": "epoch"}, steps_per_epoch=3, epochs=4)
    expected = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert per_epoch == pytest.approx([v for v in expected for _ in range(3)])
    per_iter, _ = _lrs({"type": "cosine", "min_lr": 0.1}, steps_per_epoch=3, epochs=4)
    assert per_iter[::3] == pytest.approx(expected) and per_iter[1] < per_iter[0]
    # a window starting inside the run, after a per-iteration warm-up
    lrs, _ = _lrs([{"type": "linear", "start_factor": 0.5, "end": 1},
                   {"type": "cosine", "begin": 1, "update": "epoch"}], steps_per_epoch=2, epochs=3)
    assert lrs == pytest.approx([0.5, 0.75, 1.0, 1.0, 0.5, 0.5])


def test_weight_decay_schedule_scales_each_group_and_spares_groups_without_decay() -> None:
    model = Small()
    optimizer = build_optimizer(model, OPTIM.validate_python(
        {"type": "sgd", "lr": 0.1, "weight_decay": 1e-4, "paramwise": {"norm_decay_mult": 0.0}}))
    entries = [SCHEDULE.validate_python(e) for e in (
        {"type": "cosine", "param": "weight_decay", "min_lr": 1e-5, "update": "epoch"},
        {"type": "step", "step_size": 1, "gamma": 0.5})]
    sched = LrSchedule(optimizer, entries, steps_per_epoch=2, epochs=3)
    seen = []
    for _ in range(6):
        seen.append([(g["lr"], g["weight_decay"]) for g in optimizer.param_groups])
        sched.step()
    cosine = [1e-5 + (1e-4 - 1e-5) * 0.5 * (1 + math.cos(math.pi * e / 3)) for e in range(3)]
    assert [s[0][1] for s in seen] == pytest.approx([w for w in cosine for _ in range(2)])
    assert [s[0][0] for s in seen] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])  # lr entries only
    assert all(s[1][1] == 0.0 for s in seen)  # the norm group keeps no decay
    sched.load_state_dict({"step": 4})
    assert optimizer.param_groups[0]["weight_decay"] == pytest.approx(cosine[2])
    with pytest.raises(ValidationError):
        SCHEDULE.validate_python({"type": "cosine", "param": "beta2"})
    with pytest.raises(ValidationError):
        SCHEDULE.validate_python({"type": "cosine", "update": "batch"})


def test_state_dict_restores_lr_exactly() -> None:
    lrs, _ = _lrs({"type": "cosine", "warmup_epochs": 1}, 5, 3)
    param = nn.Parameter(torch.zeros(1))
    sched = LrSchedule(torch.optim.SGD([param], lr=1.0), SCHEDULE.validate_python({"type": "cosine",
                                                                                   "warmup_epochs": 1}), 5, 3)
    sched.load_state_dict({"step": 7})
    assert sched.state_dict() == {"step": 7} and sched.current_lr() == lrs[7]


def test_recipe_accepts_a_schedule_list_and_checks_entries(tmp_path: Path) -> None:
    data = tiny_recipe_dict(tmp_path, tmp_path / "run", epochs=4)
    data["schedule"] = [{"type": "linear", "start_factor": 0.1, "by_epoch": False, "end": 10},
                        {"type": "multistep", "milestones": [2, 3]}]
    recipe = validate_recipe(data)
    assert [type(e).__name__ for e in recipe.schedules] == ["LinearSchedule", "MultiStepSchedule"]
    data["schedule"][1]["milestones"] = [2, 9]
    with pytest.raises(RecipeError, match="last milestone 9 is after the last epoch"):
        validate_recipe(data)
    with pytest.raises(ValidationError, match="warmup_epochs or warmup_iters"):
        SCHEDULE.validate_python({"type": "cosine", "warmup_epochs": 1, "warmup_iters": 5})
    with pytest.raises(ValidationError, match="must be after begin"):
        SCHEDULE.validate_python({"type": "cosine", "begin": 5, "end": 2})


def test_auto_lr_scale_is_global_batch_over_base_batch(tmp_path: Path) -> None:
    data = tiny_recipe_dict(tmp_path, tmp_path / "run")
    assert auto_lr_scale(validate_recipe(data), 64) == 1.0  # off
    data["optim"]["base_batch_size"] = 256
    data["runtime"]["auto_scale_lr"] = True
    assert auto_lr_scale(validate_recipe(data), 64) == 0.25
