"""``frozen_stages`` for every family: recorded stages, exactly-frozen parameters, BatchNorm statistics."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from clsctl.errors import ClsctlError
from clsctl.models import create_model, list_models, model_info
from clsctl.models.freeze import FrozenStagesError, freeze_stages, frozen_paths

ALL = list_models()


def _param_names_under(model: nn.Module, paths: list[str]) -> set[str]:
    names = set()
    for path in paths:
        try:
            module = model.get_submodule(path)
        except AttributeError:
            model.get_parameter(path)  # a parameter path (ViT's class_token) must exist too
            names.add(path)
            continue
        names |= {f"{path}.{name}" for name, _ in module.named_parameters()}
    return names


def _frozen(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if not p.requires_grad}


@pytest.mark.parametrize("name", ALL)
def test_recorded_stages_exist_and_freezing_is_exact(name: str) -> None:
    stages = model_info(name).layout.stages
    assert len(stages) >= 3 and all(stages[1:]), "a stem entry and at least two non-empty stages"
    with torch.device("meta"):  # shapes only: the structure is what is checked
        model = create_model(name, frozen_stages=1)
    all_params = {n for n, _ in model.named_parameters()}
    per_stage = [_param_names_under(model, paths) for paths in stages]
    assert all(per_stage[1:]), "every stage holds parameters"
    assert sum(map(len, per_stage)) == len(set().union(*per_stage)), "no parameter belongs to two stages"
    # Exactly the stem's and the first stage's parameters are frozen, everything else trains.
    # inception's aux head never trains (it is not run in training, so DDP sees no unused parameters)
    never_trained = {n for n in all_params if n.startswith("AuxLogits.")}
    assert _frozen(model) - never_trained == per_stage[0] | per_stage[1]
    frozen_modules = [m for p in stages[0] + stages[1] if (m := _module_or_none(model, p)) is not None]
    assert all(not sub.training for m in frozen_modules for sub in m.modules())
    # Freezing every stage leaves exactly the classifier trainable: the stages cover the whole backbone.
    freeze_stages(model, len(stages) - 1)
    head = model_info(name).layout.classifier.split(".")[0]
    trainable = all_params - _frozen(model)
    assert trainable and all(n.split(".")[0] in {head, "AuxLogits"} for n in trainable), sorted(trainable)[:5]


def _module_or_none(model: nn.Module, path: str) -> nn.Module | None:
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None


def test_out_of_range_raises_with_the_valid_range() -> None:
    with pytest.raises(ValueError, match=r"frozen_stages must be in \[-1, 4\].*got 5"):
        create_model("test_repvgg", frozen_stages=5)
    with pytest.raises(FrozenStagesError, match=r"\[-1, 3\].*got -2"):
        create_model("resnet20_cifar", frozen_stages=-2)
    with pytest.raises(ClsctlError, match="frozen_stages"):  # the CLI renders it as a one-line error
        frozen_paths(model_info("lenet5").layout.stages, 3)
    with pytest.raises(FrozenStagesError):
        frozen_paths([["a"], ["b"]], True)  # a bool is not a stage count


def test_minus_one_freezes_nothing_and_zero_only_the_stem() -> None:
    model = create_model("test_mobileone", frozen_stages=-1)
    assert all(p.requires_grad for p in model.parameters())
    model = create_model("test_mobileone", frozen_stages=0)
    assert _frozen(model) == {f"stage0.{n}" for n, _ in model.stage0.named_parameters()}


def _batchnorms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


BEHAVIOUR = [("test_resnet", 2), ("test_repvgg", 2), ("test_mobileone", 3), ("mobilenet_v3_small", 4), ("lenet5", 1)]


@pytest.mark.parametrize(("name", "k"), BEHAVIOUR)
def test_training_step_leaves_frozen_stages_untouched(name: str, k: int) -> None:
    torch.manual_seed(0)
    # With the residual BN at zero (the default) the conv before it gets no gradient in the first step.
    init = {"zero_init_residual": False} if name == "test_resnet" else {}
    model = create_model(name, num_classes=5, frozen_stages=k, **init)
    stages = model_info(name).layout.stages
    frozen_modules = [model.get_submodule(p) for p in frozen_paths(stages, k)]
    trained_modules = [model.get_submodule(p) for paths in stages[k + 1:] for p in paths]
    frozen_bn = [bn for m in frozen_modules for bn in _batchnorms(m)]
    trained_bn = [bn for m in trained_modules for bn in _batchnorms(m)]
    params_before = {n: p.detach().clone() for n, p in model.named_parameters()}
    stats_before = [bn.running_mean.clone() for bn in frozen_bn + trained_bn]

    model.train()
    assert all(not m.training for fm in frozen_modules for m in fm.modules())
    assert all(bn.training for bn in trained_bn)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.arange(4) % 5)
    loss.backward()
    optimizer.step()

    frozen_names = _frozen(model)
    for name_, param in model.named_parameters():
        changed = not torch.equal(param, params_before[name_])
        assert changed != (name_ in frozen_names), name_
        assert (param.grad is None) == (name_ in frozen_names), name_
    stats = [bn.running_mean for bn in frozen_bn + trained_bn]
    assert all(torch.equal(a, b) for a, b in zip(stats[: len(frozen_bn)], stats_before))
    assert all(not torch.equal(a, b) for a, b in zip(stats[len(frozen_bn):], stats_before[len(frozen_bn):]))
    if name != "lenet5":  # LeNet-5 has no BatchNorm; its check is the parameters above
        assert frozen_bn and trained_bn


def test_statistics_stay_frozen_when_modes_are_switched_behind_the_models_back() -> None:
    model = create_model("test_resnet", frozen_stages=1)
    model.train()
    model.layer1.train()  # bypasses model.train: the forward pre-hooks still apply
    assert model.layer1[0].bn1.training
    before = model.layer1[0].bn1.running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    assert torch.equal(model.layer1[0].bn1.running_mean, before)
    assert not model.layer1[0].bn1.training and model.layer2[0].bn1.training


@pytest.mark.parametrize("clone", ["deepcopy", "pickle"])
def test_copies_keep_their_frozen_stages(clone: str) -> None:
    model = create_model("test_repvgg", frozen_stages=2).eval()
    if clone == "deepcopy":
        copied = copy.deepcopy(model)
    else:
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        copied = torch.load(buffer, weights_only=False)
    copied.eval()
    copied.train()  # must be the copy's own train: the original stays in eval mode
    assert not model.training and copied.training
    assert not copied.stage1.training and not copied.stage2.training and copied.stage3.training
    assert not any(p.requires_grad for p in copied.stage2.parameters())
    before = copied.stage2[0].rbr_dense.bn.running_mean.clone()
    copied(torch.randn(2, 3, 32, 32))
    assert torch.equal(copied.stage2[0].rbr_dense.bn.running_mean, before)


def test_resnet_records_frozen_stages_and_keeps_its_own_train_consistent() -> None:
    model = create_model("test_resnet", frozen_stages=3)
    assert model.frozen_stages == 3
    model.train()
    assert not model.layer3.training and model.layer4.training
