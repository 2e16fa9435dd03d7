"""RepVGG and MobileOne: the deploy form computes what the training form computes, and has fixed structure."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clsctl.models import create_model, list_models, model_info
from clsctl.models.mobileone import MobileOneBlock
from clsctl.models.repvgg import RepVGGBlock

REPARAM = list_models(reparameterizable=True)


def randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics and affine parameters, so that a wrong fold shows in the outputs."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            for tensor, low, high in ((module.running_mean, -0.5, 0.5), (module.running_var, 0.5, 2.0),
                                      (module.weight.data, 0.5, 1.5), (module.bias.data, -0.5, 0.5)):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)


def test_every_repvgg_and_mobileone_variant_is_reparameterizable() -> None:
    assert {"repvgg_a0", "repvgg_b3g4", "mobileone_s0", "mobileone_s4", "test_repvgg", "test_mobileone"} <= set(REPARAM)
    assert all(model_info(n).family in {"repvgg", "mobileone"} for n in REPARAM)


@pytest.mark.parametrize("name", REPARAM)
def test_deploy_outputs_equal_training_outputs(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    randomize_bn(model)
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        model.reparameterize()
        after = model(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert (after - before).abs().max() <= 1e-4 * before.abs().max()
    assert before.abs().max() > 0


def test_a_wrong_fold_would_be_caught() -> None:
    model = create_model("test_repvgg").eval()
    randomize_bn(model)
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
