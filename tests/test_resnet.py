"""The ResNet family: torchvision compatibility, CIFAR stem, frozen stages, metadata."""

import pytest
import torch
import torchvision

from clsctl.models import create_model, model_info


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_state_dict_reproduces_outputs(name: str) -> None:
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)().eval()
    for module in reference.modules():  # non-trivial BN statistics so a wrong mapping would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    ours = create_model(name).eval()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(ours(x), reference(x))
    assert count(ours) == model_info(name).num_params


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "test_resnet",
                                  "resnet20_cifar", "resnet56_cifar"])
def test_parameter_counts_match_metadata(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    assert count(model) == model_info(name).num_params


def test_cifar_stem_keeps_resolution_and_num_classes() -> None:
    model = create_model("resnet18", num_classes=7, cifar_stem=True).eval()
    assert model.conv1.kernel_size == (3, 3) and isinstance(model.maxpool, torch.nn.Identity)
    features = model.forward_features(torch.randn(1, 3, 32, 32))
    assert features.shape == (1, 512, 4, 4)  # 32 / 8: only the three stride-2 stages downsample
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert model.model_meta.num_classes == 7


def test_frozen_stages_freeze_parameters_and_bn_statistics() -> None:
    model = create_model("test_resnet", frozen_stages=2)
    model.train()
    frozen = [model.conv1, model.bn1, model.layer1, model.layer2]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in model.layer3.parameters())
    assert not model.bn1.training and not model.layer2[0].bn1.training and model.layer3[0].bn1.training
    before = model.layer1[0].bn1.running_mean.clone()
    model(torch.randn(4, 3, 32, 32))
    assert torch.equal(model.layer1[0].bn1.running_mean, before)
    with pytest.raises(ValueError, match="frozen_stages"):
        create_model("test_resnet", frozen_stages=5)


def test_zero_init_residual_and_dropout() -> None:
    model = create_model("test_resnet", zero_init_residual=True, drop_rate=0.5)
    assert torch.count_nonzero(model.layer1[0].bn2.weight) == 0
    assert isinstance(model.dropout, torch.nn.Dropout)


def test_metadata_is_consistent() -> None:
    meta = model_info("resnet-50")
    assert meta.name == "resnet50" and meta.input_size == (224, 224) and meta.has_pretrained
    assert meta.pretrained_url.endswith("resnet50-0676ba61.pth")
    assert meta.layout.classifier == "fc"
    assert not model_info("test_resnet").has_pretrained
