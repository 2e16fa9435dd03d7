"""Fresh models have the defaults docs/defaults.md lists (MMPretrain's, timm's where MMPretrain lacks the family).

Values are checked on built models: on real weights for small variants, and for the "every variant" checks with
the random initialisers that only fill weights (Kaiming, Xavier, truncated normal) replaced by no-ops, so that
even ResNet-152 builds in a fraction of a second; the constant initialisers (BatchNorm's ones, the zero-init of
residual branches) still run there. Where timm has the family, the test also builds timm's model and compares.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from clsctl.models import create_model, list_models, model_info
from clsctl.models._defaults import DOC_PATH, FAMILY_DEFAULTS, defaults_of, main, render_defaults

FAMILIES = sorted({model_info(n).family for n in list_models()})
# The smallest variant of each family, built with real initialisation.
SMALLEST = {
    "resnet": "test_resnet", "resnet_cifar": "resnet20_cifar", "se_resnet": "se_resnet50", "res2net": "res2net50",
    "regnet": "regnet_x_400mf", "convnext": "convnext_tiny", "vit": "test_vit", "deit": "deit_tiny",
    "swin": "test_swin", "swin_v2": "swin_v2_tiny", "mobilenet_v2": "mobilenet_v2",
    "mobilenet_v3": "mobilenet_v3_small", "efficientnet": "efficientnet_b0", "efficientnet_v2": "efficientnet_v2_s",
    "shufflenet_v1": "shufflenet_v1_1_0x", "shufflenet_v2": "shufflenet_v2_x0_5", "mnasnet": "mnasnet0_5",
    "densenet": "densenet121", "vgg": "vgg11_bn", "inception": "inception_v3", "lenet": "lenet5",
    "repvgg": "test_repvgg", "mobileone": "test_mobileone",
}
RESIDUAL_BLOCKS = {"BasicBlock": "bn2", "Bottleneck": "bn3", "SEBottleneck": "bn3", "Bottle2neck": "bn3"}


@pytest.fixture()
def fast_init(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the random initialisers no-ops (the constant ones, ``ones_``, ``zeros_``, ``constant_``, still run)."""
    for name in ("kaiming_normal_", "kaiming_uniform_", "xavier_uniform_", "trunc_normal_", "normal_", "uniform_"):
        monkeypatch.setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
    yield


@pytest.fixture()
def small_tensors_init(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Random initialisers fill only tensors of up to 250,000 values (every classifier checked here),
    so that big models build fast; the others keep whatever memory they got."""
    for name in ("kaiming_normal_", "kaiming_uniform_", "xavier_uniform_", "trunc_normal_", "normal_", "uniform_"):
        original = getattr(nn.init, name)

        def only_small(tensor: torch.Tensor, *args: object, _original: object = original, **kwargs: object):
            return _original(tensor, *args, **kwargs) if tensor.numel() <= 250_000 else tensor

        monkeypatch.setattr(nn.init, name, only_small)
    yield


def _variants(*families: str) -> list[str]:
    return [n for n in list_models() if model_info(n).family in families]


def last_residual_norms(model: nn.Module) -> tuple[list[nn.Module], list[nn.Module]]:
    """(the last BatchNorm of each residual branch, every other BatchNorm), found by block type."""
    last = []
    for module in model.modules():
        name = type(module).__name__
        if name in RESIDUAL_BLOCKS:
            last.append(getattr(module, RESIDUAL_BLOCKS[name]))
        elif name == "ResBottleneckBlock":  # torchvision's RegNet block: x + f(x), f ends with conv c + norm
            last.append(module.f.c[1])
    ids = {id(m) for m in last}
    others = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and id(m) not in ids]
    return last, others


def test_every_family_has_an_entry_and_the_doc_is_current(tmp_path) -> None:
    assert sorted(d.family for d in FAMILY_DEFAULTS) == FAMILIES
    assert DOC_PATH.read_text(encoding="utf-8") == render_defaults(), (
        "docs/defaults.md is stale: run python -m clsctl.models._defaults")
    main(tmp_path / "d.md")
    text = (tmp_path / "d.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| resnet |"))
    assert "last BN = 0" in row and "mmpretrain/models/backbones/resnet.py" in row and "N(0, 0.01)" in row
    assert "(defaults.md)" in (DOC_PATH.parent / "model_zoo.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", _variants("resnet", "resnet_cifar", "se_resnet", "res2net", "regnet"))
def test_last_bn_of_every_residual_block_is_zero(name: str, fast_init: None) -> None:
    assert defaults_of(model_info(name).family).zero_init_residual
    model = create_model(name, num_classes=10)
    last, others = last_residual_norms(model)
    assert len(last) >= 4
    assert all(torch.count_nonzero(bn.weight) == 0 and torch.count_nonzero(bn.bias) == 0 for bn in last)
    assert all(torch.equal(bn.weight, torch.ones_like(bn.weight)) for bn in others)


@pytest.mark.parametrize("name", ["test_resnet", "resnet20_cifar", "regnet_x_400mf"])
def test_fresh_residual_blocks_start_as_identities(name: str) -> None:
    model = create_model(name, num_classes=10).eval()
    blocks = [m for m in model.modules() if type(m).__name__ in (*RESIDUAL_BLOCKS, "ResBottleneckBlock")]
    torch.manual_seed(0)
    with torch.no_grad():
        for block in blocks[:3]:
            channels = (block.conv1.in_channels if hasattr(block, "conv1") else block.f.a[0].in_channels)
            x = torch.randn(2, channels, 8, 8)
            shortcut = getattr(block, "downsample", None) or getattr(block, "proj", None)
            expected = torch.relu(x if shortcut is None else shortcut(x))
            assert torch.allclose(block(x), expected)


def test_zero_init_residual_false_gives_torchvision_init() -> None:
    model = create_model("test_resnet", zero_init_residual=False)
    last, _ = last_residual_norms(model)
    assert all(torch.equal(bn.weight, torch.ones_like(bn.weight)) for bn in last)
    model = create_model("regnet_x_400mf", zero_init_residual=False)
    assert all(torch.equal(bn.weight, torch.ones_like(bn.weight)) for bn in last_residual_norms(model)[0])


def _head(model: nn.Module, name: str) -> nn.Linear:
    return model.get_submodule(model_info(name).layout.classifier)


@pytest.mark.parametrize("family", FAMILIES)
def test_classifier_init(family: str, small_tensors_init: None) -> None:
    name = SMALLEST[family]
    entry = defaults_of(family)
    torch.manual_seed(0)
    fast = {"deit": {"image_size": 32}}.get(family, {})
    model = create_model(name, num_classes=50, **fast)
    head = _head(model, name)
    weight, bias = head.weight.detach(), head.bias.detach()
    kind = entry.head[0]
    if family == "deit":  # MMPretrain's DeiT init_cfg: every linear TruncNormal(0.02), bias 0
        block = model.encoder.layers[0]
        for linear in (block.self_attention.in_proj_weight, block.mlp[0].weight, block.self_attention.out_proj.weight):
            assert abs(float(linear.detach().std()) - 0.02) < 0.002
        assert torch.count_nonzero(block.self_attention.in_proj_bias) == 0
    if kind == "zeros":
        assert torch.count_nonzero(weight) == 0 and torch.count_nonzero(bias) == 0
        return
    if kind == "pytorch":  # kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in))
        assert weight.abs().max() <= 1 / head.in_features**0.5
        return
    assert torch.count_nonzero(bias) == 0
    assert abs(float(weight.mean())) < 0.1 * float(weight.std())
    if kind == "uniform_fan_out":
        bound = 1 / head.out_features**0.5
        assert weight.abs().max() <= bound and abs(float(weight.std()) - bound / 3**0.5) < 0.05 * bound
        return
    std = entry.head[1]
    # trunc_normal_ cuts at +-2 (absolute), which for std 0.1 and 0.02 removes nothing that matters here
    assert abs(float(weight.std()) - std) < 0.08 * std, (family, float(weight.std()))


@pytest.mark.parametrize("family", [d.family for d in FAMILY_DEFAULTS if d.batchnorm is not None])
def test_batchnorm_eps_and_momentum(family: str) -> None:
    eps, momentum = defaults_of(family).batchnorm
    with torch.device("meta"):
        model = create_model(SMALLEST[family])
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(bn.eps == eps and bn.momentum == momentum for bn in norms), family


@pytest.mark.parametrize("family", [d.family for d in FAMILY_DEFAULTS if d.batchnorm is None])
def test_families_without_batchnorm(family: str) -> None:
    with torch.device("meta"):
        model = create_model(SMALLEST[family])
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _drop_path_rates(model: nn.Module) -> list[float]:
    from torchvision.ops import StochasticDepth

    return [m.p for m in model.modules() if isinstance(m, StochasticDepth)]


# Every variant of the families whose rates vary by variant or that change torchvision's; one of the others.
_RATE_VARIANTS = _variants(*(d.family for d in FAMILY_DEFAULTS if d.drop_path or d.dropout or "drop" in
                             d.differs_from_torchvision))
_RATE_VARIANTS += [SMALLEST[f] for f in FAMILIES if SMALLEST[f] not in _RATE_VARIANTS]


@pytest.mark.parametrize("name", _RATE_VARIANTS)
def test_drop_path_and_dropout(name: str) -> None:
    meta = model_info(name)
    entry = defaults_of(meta.family)
    with torch.device("meta"):
        model = create_model(name)
    rates = _drop_path_rates(model)
    assert max(rates, default=0.0) == pytest.approx(entry.drop_path.get(name, 0.0)), rates
    if rates and entry.drop_path.get(name):
        assert min(rates) < max(rates)  # rising with depth, as every reference does
    # Dropout right before the classifier (a Dropout in the classifier Sequential, or the model's own).
    classifier_path = meta.layout.classifier.rsplit(".", 1)
    holder = model.get_submodule(classifier_path[0]) if len(classifier_path) == 2 else model
    drops = [m.p for m in holder.children() if isinstance(m, nn.Dropout)] if holder is not model else []
    drops += [m.p for n, m in model.named_children() if isinstance(m, nn.Dropout) and n in ("dropout", "drop")]
    if meta.family == "inception":
        drops = [model.dropout.p]
    expected = entry.dropout.get(name, 0.0)
    assert max(drops, default=0.0) == pytest.approx(expected), (name, drops)


def test_vit_dropout_and_drop_path_option() -> None:
    with torch.device("meta"):
        model = create_model("vit_b_32")
        deeper = create_model("test_vit", drop_path_rate=0.2)
    assert all(m.p == 0.1 for m in model.modules() if isinstance(m, nn.Dropout))
    assert _drop_path_rates(deeper) == pytest.approx([0.2, 0.2])  # layer 0 has none, layer 1 the full rate
    torch.manual_seed(0)
    vit = create_model("test_vit", drop_path_rate=0.5)
    x = torch.randn(4, 3, 32, 32)
    nn.init.normal_(vit.heads.head.weight)  # the zero head would hide everything before it
    vit.eval()
    reference = vit(x)
    vit.train()
    assert not torch.allclose(vit(x), reference)  # drops branches in training
    vit.eval()
    assert torch.equal(vit(x), reference)  # and is the identity in eval mode
    assert set(vit.state_dict()) == set(create_model("test_vit").state_dict())  # no new weights


def test_convnext_layer_scale(fast_init: None) -> None:
    model = create_model("convnext_tiny", num_classes=10)
    scales = [m.layer_scale for m in model.modules() if hasattr(m, "layer_scale")]
    assert len(scales) == 18 and all(torch.allclose(s, torch.full_like(s, 1e-6)) for s in scales)


def test_shufflenet_init_is_mmpretrains() -> None:
    torch.manual_seed(0)
    for name, stem in (("shufflenet_v1_1_0x", "conv1.0"), ("shufflenet_v2_x0_5", "conv1.0")):
        model = create_model(name, num_classes=10)
        assert abs(float(model.get_submodule(stem).weight.detach().std()) - 0.01) < 0.002
        convs = [m for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and "conv1" not in n]
        big = max(convs, key=lambda c: c.weight.numel())
        assert abs(float(big.weight.detach().std()) - 1 / big.weight.shape[1]) < 0.1 / big.weight.shape[1]
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert all(torch.allclose(bn.bias, torch.full_like(bn.bias, 1e-4)) for bn in norms)


def test_mnasnet_matches_timm() -> None:
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        ours = create_model("mnasnet1_0")
        theirs = timm.create_model("mnasnet_100")
    ours_bn = {(m.eps, m.momentum) for m in ours.modules() if isinstance(m, nn.BatchNorm2d)}
    theirs_bn = {(m.eps, m.momentum) for m in theirs.modules() if isinstance(m, nn.BatchNorm2d)}
    assert ours_bn == theirs_bn == {(1e-5, 0.1)}
    torch.manual_seed(0)
    ours, theirs = create_model("mnasnet0_5", num_classes=100), timm.create_model("mnasnet_050", num_classes=100)
    # Depthwise 3x3 convs: timm's fan_out counts per group -> std sqrt(2 / 9) (PyTorch's Kaiming: sqrt(2 / (9 C))).
    for model in (ours, theirs):
        depthwise = torch.cat([m.weight.detach().flatten() for m in model.modules()
                               if isinstance(m, nn.Conv2d) and m.groups > 1 and m.kernel_size == (3, 3)])
        assert abs(float(depthwise.std()) - (2 / 9) ** 0.5) < 0.05 * (2 / 9) ** 0.5
    assert abs(float(ours.classifier[1].weight.detach().std()) - float(theirs.classifier.weight.detach().std())) < 0.01


def test_regnet_y_matches_timm_zero_init_last() -> None:
    timm = pytest.importorskip("timm")
    theirs = timm.create_model("regnety_004", num_classes=10)
    zeroed = [m for n, m in theirs.named_modules() if isinstance(m, nn.BatchNorm2d) and bool((m.weight == 0).all())]
    blocks = [m for m in theirs.modules() if type(m).__name__ == "Bottleneck"]
    assert len(zeroed) == len(blocks) > 0  # timm: exactly one zero BN per residual block, as ours
    ours, _ = last_residual_norms(create_model("regnet_y_400mf", num_classes=10))
    assert len(ours) == len(blocks)


def test_timm_resnet_also_zero_inits_the_last_bn() -> None:
    timm = pytest.importorskip("timm")
    theirs = timm.create_model("resnet18", num_classes=10)
    theirs_zero = sorted(n for n, m in theirs.named_modules() if isinstance(m, nn.BatchNorm2d)
                         and bool((m.weight == 0).all()))
    ours = create_model("resnet18", num_classes=10)
    ours_zero = sorted(n for n, m in ours.named_modules() if isinstance(m, nn.BatchNorm2d)
                       and bool((m.weight == 0).all()))
    assert theirs_zero == ours_zero == [f"layer{i}.{j}.bn2" for i in range(1, 5) for j in range(2)]


@pytest.mark.parametrize("name", ["resnet18", "shufflenet_v2_x0_5"])
def test_loading_torchvision_weights_is_bit_identical(name: str, tmp_path) -> None:
    import torchvision

    torch.manual_seed(1)
    reference = getattr(torchvision.models, name)(weights=None, num_classes=10)
    path = tmp_path / "w.pth"
    torch.save(reference.state_dict(), path)
    ours = create_model(name, num_classes=10, weights=path)
    theirs = reference.state_dict()
    assert all(torch.equal(value, theirs[key]) for key, value in ours.state_dict().items())
