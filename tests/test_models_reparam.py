"""clsctl.models.reparam, RepVGG and MobileOne: the deploy form of every re-parameterizable variant computes what
the training form computes and has a fixed structure; conv + BatchNorm folding."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from clsctl.models import create_model, list_models, model_info
from clsctl.models.mobileone import MobileOneBlock
from clsctl.models.reparam import find_conv_bn_pairs, fold_conv_bn, reparameterize, to_deploy
from clsctl.models.repvgg import RepVGGBlock

from deploy_helpers import randomize_batchnorm

REPARAM_MODELS = list_models(reparameterizable=True)
BIG = 40_000_000  # building and converting these takes seconds each on a shared CPU


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _relative_diff(reference: torch.Tensor, output: torch.Tensor) -> float:
    return float((reference - output).abs().max() / reference.abs().max())


def test_every_repvgg_and_mobileone_variant_is_listed() -> None:
    names = set(REPARAM_MODELS)
    assert {"repvgg_a0", "repvgg_b3g4", "mobileone_s0", "mobileone_s4", "test_repvgg", "test_mobileone"} <= names
    assert "resnet18" not in names and "test_resnet" not in names
    assert all(model_info(n).family in {"repvgg", "mobileone"} for n in REPARAM_MODELS)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if (model_info(n).num_params or 0) > BIG else n for n in REPARAM_MODELS
])
def test_deploy_form_computes_the_same_function(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).eval()
    randomize_batchnorm(model)
    # float64: the deep variants' float32 rounding (Kaiming-initialised branches) would blur the comparison
    model.double()
    inputs = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        reference = model(inputs)
    assert to_deploy(model) is model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # every branch BN was folded
    with torch.no_grad():
        output = model(inputs)
    assert reference.abs().max() > 0
    assert _relative_diff(reference, output) < 1e-9
    # The converted tree is the one the family builds directly in deploy form (so deploy checkpoints load).
    assert _shapes(model) == _shapes(create_model(name, num_classes=5, deploy=True))


def test_reparameterize_is_idempotent_and_reports_modules() -> None:
    model = create_model("test_repvgg").eval()
    called = reparameterize(model)
    assert "" in called and "stage0" in called
    state = {k: v.clone() for k, v in model.state_dict().items()}
    reparameterize(model)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert reparameterize(create_model("test_resnet")) == []


@pytest.mark.parametrize("name", ["test_resnet", "resnet18"])
def test_fuse_conv_bn_on_resnet(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7).eval()
    randomize_batchnorm(model, seed=3)
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = model(inputs)
    batchnorms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    pairs = fold_conv_bn(model)
    assert len(pairs) == batchnorms  # in a ResNet every BatchNorm follows a conv (downsample ones included)
    assert ("conv1", "bn1") in pairs and any(bn.endswith("downsample.1") for _, bn in pairs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(model.get_submodule(conv).bias is not None for conv, _ in pairs)
    with torch.no_grad():
        output = model(inputs)
    assert _relative_diff(reference, output) < 1e-5
    # Deterministic: a freshly built model converts to the same keys and shapes, so the weights load.
    fresh = to_deploy(create_model(name, num_classes=7), fuse_conv_bn=True)
    assert _shapes(fresh) == _shapes(model)
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(fresh(inputs), output)


def test_repvgg_deploy_with_fusion_leaves_no_batchnorm() -> None:
    model = create_model("test_repvgg").eval()
    to_deploy(model, fuse_conv_bn=True)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class _Branchy(nn.Module):
    """conv -> bn, plus a conv whose output is read twice and a BatchNorm before a conv (pre-activation)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(3, 4, 3, padding=1, bias=True)
        self.bn_a = nn.BatchNorm2d(4)
        self.conv_b = nn.Conv2d(4, 4, 1, bias=False)
        self.bn_b = nn.BatchNorm2d(4)
        self.pre_bn = nn.BatchNorm2d(4)
        self.conv_c = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_a(self.conv_a(x))
        y = self.conv_b(x)
        return self.conv_c(self.pre_bn(self.bn_b(y) + y))


def test_only_foldable_pairs_are_folded() -> None:
    model = _Branchy().eval()
    randomize_batchnorm(model)
    inputs = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        reference = model(inputs)
    # conv_b's output also feeds the addition, so bn_b cannot go into it; pre_bn follows an addition.
    assert fold_conv_bn(model) == [("conv_a", "bn_a")]
    assert isinstance(model.bn_a, nn.Identity) and isinstance(model.bn_b, nn.BatchNorm2d)
    with torch.no_grad():
        assert _relative_diff(reference, model(inputs)) < 1e-5


class _Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it, so only nn.Sequential neighbours are folded."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.conv = nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x)
        if x.sum() > 0:
            x = x * 2
        return self.bn(self.conv(x))


def test_untraceable_model_falls_back_to_sequential_neighbours() -> None:
    model = _Untraceable().eval()
    randomize_batchnorm(model)
    inputs = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        reference = model(inputs)
    assert find_conv_bn_pairs(model) == [("body.0", "body.1")]
    fold_conv_bn(model)
    assert isinstance(model.body[1], nn.Identity) and isinstance(model.bn, nn.BatchNorm2d)
    with torch.no_grad():
        assert _relative_diff(reference, model(inputs)) < 1e-5


def test_batchnorm_without_running_stats_and_affine_free_batchnorm() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False),
                          nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4, affine=False)).eval()
    randomize_batchnorm(model)
    inputs = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        reference = model(inputs)
    assert fold_conv_bn(copy.deepcopy(model)) == [("2", "3")]  # batch statistics cannot be folded
    fold_conv_bn(model)
    with torch.no_grad():
        assert _relative_diff(reference, model(inputs)) < 1e-5


def test_a_wrong_fold_would_be_caught() -> None:
    model = create_model("test_repvgg").eval()
    randomize_batchnorm(model)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        model.stage1[0].rbr_1x1.bn.running_var.mul_(2.0)  # changes the function, so the fold must differ
        model.reparameterize()
        after = model(x)
    assert (after - before).abs().max() > 1e-4 * before.abs().max()


@pytest.mark.parametrize("name", ["test_repvgg", "test_mobileone"])
def test_reparameterize_is_idempotent_and_structure_deterministic(name: str) -> None:
    trained = create_model(name)
    optimizer = torch.optim.SGD(trained.parameters(), lr=0.1)
    trained.train()
    for _ in range(2):  # a couple of steps change weights and BN statistics, not the structure
        optimizer.zero_grad()
        trained(torch.randn(4, 3, 32, 32)).sum().backward()
        optimizer.step()
    trained.eval().reparameterize()
    state = trained.state_dict()
    trained.reparameterize()
    assert trained.state_dict().keys() == state.keys()
    fresh = create_model(name).reparameterize().state_dict()
    direct = create_model(name, deploy=True).state_dict()  # the deploy form built directly
    shapes = {k: v.shape for k, v in state.items()}
    assert {k: v.shape for k, v in fresh.items()} == shapes == {k: v.shape for k, v in direct.items()}
    deploy_model = create_model(name, deploy=True).eval()
    deploy_model.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(deploy_model(x), trained(x), atol=1e-6)


def test_blocks_fold_identity_and_grouped_branches() -> None:
    block = RepVGGBlock(8, 8, stride=1, groups=2)
    assert block.rbr_identity is not None
    block.reparameterize()
    assert block.rbr_reparam.groups == 2 and block.rbr_reparam.kernel_size == (3, 3)
    depthwise = MobileOneBlock(6, 6, 3, groups=6, branches=3)
    assert len(depthwise.rbr_conv) == 3 and depthwise.rbr_skip is not None
    depthwise.reparameterize()
    assert depthwise.reparam_conv.groups == 6 and depthwise.deployed
    strided = MobileOneBlock(6, 12, 1, stride=2)
    assert strided.rbr_skip is None and strided.rbr_scale is None


def test_mobileone_s4_has_squeeze_excitation_where_published() -> None:
    with torch.device("meta"):
        model = create_model("mobileone_s4")
    se = [name for name, m in model.named_modules() if type(m).__name__ == "SEBlock"]
    assert all(name.startswith(("stage3.", "stage4.")) for name in se)
    assert len(se) == 2 * (10 // 2) + 2 * 1  # last half of stage 3, all of stage 4; two blocks per unit
