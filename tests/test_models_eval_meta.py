"""Evaluation preprocessing metadata (eval resize, interpolation) recomputed from the peers' own code."""

from __future__ import annotations

import pytest

from clsctl.data.preprocessing import Preprocessing
from clsctl.models import list_models, model_info

TORCHVISION_URL = "https://download.pytorch.org/models/"


def _torchvision_eval_transforms() -> dict[str, tuple[int, int, str]]:
    """(crop, resize, interpolation) of every torchvision classification weights file, by file name."""
    import torchvision.models as tvm

    found = {}
    for builder in tvm.list_models(module=tvm):
        for weights in tvm.get_model_weights(builder):
            transform = weights.transforms()
            if hasattr(transform, "crop_size"):
                found[weights.url.rsplit("/", 1)[-1]] = (transform.crop_size[0], transform.resize_size[0],
                                                         transform.interpolation.value)
    return found


def test_every_torchvision_weighted_variant_evaluates_like_torchvisions_transforms() -> None:
    published = _torchvision_eval_transforms()
    checked = 0
    for name in list_models():
        meta = model_info(name)
        if meta.pretrained_url is None or not meta.pretrained_url.startswith(TORCHVISION_URL):
            continue
        crop, resize, interpolation = published[meta.pretrained_url.rsplit("/", 1)[-1]]
        assert (min(meta.input_size), meta.eval_resize_size, meta.interpolation) == (crop, resize, interpolation), name
        checked += 1
    assert checked > 60


def _close_to_pillows(ours: "torch.Tensor", theirs: "torch.Tensor") -> None:
    """clsctl resizes uint8 tensors (torchvision v2's antialiased kernels, which follow Pillow's), the peers PIL
    images with Pillow: the same resize, crop and normalisation, a level or two of rounding apart at most."""
    diff = (ours - theirs).abs()
    assert ours.shape == theirs.shape
    # one intensity level is about 1 / (255 x std) = 0.017; bicubic rounding differs by up to 3 on sharp noise
    assert float(diff.max()) < 0.06 and float(diff.mean()) < 5e-4


def test_eval_pipeline_output_equals_torchvisions_preset() -> None:
    import torch
    from PIL import Image
    from torchvision.models import EfficientNet_B3_Weights

    meta = model_info("efficientnet_b3")  # 300 px crop of a 320 px bicubic resize: no default value
    assert (meta.eval_resize_size, meta.interpolation) == (320, "bicubic")
    image = Image.fromarray((torch.rand(250, 410, 3) * 255).byte().numpy())
    ours = Preprocessing.from_meta(meta).transform("float")(image)
    theirs = EfficientNet_B3_Weights.IMAGENET1K_V1.transforms()(image)
    _close_to_pillows(ours, theirs)


def test_default_is_the_zoos_87_5_percent_crop() -> None:
    meta = model_info("test_resnet")
    assert (meta.eval_resize, meta.eval_resize_size, meta.interpolation) == (None, 37, "bilinear")  # 32 / 0.875
    assert model_info("resnet50").eval_resize_size == 256 and model_info("resnet50").crop_pct == 0.875


@pytest.mark.parametrize("name", ["test_vit.r160_in1k", "test_resnet.r160_in1k"])
def test_timm_meta_evaluates_like_timms_own_transform(name: str) -> None:
    timm = pytest.importorskip("timm")
    import torch
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    meta = model_info(f"timm/{name}")
    config = resolve_data_config({}, pretrained_cfg=timm.get_pretrained_cfg(name).to_dict())
    image = Image.fromarray((torch.rand(90, 130, 3) * 255).byte().numpy())
    ours = Preprocessing.from_meta(meta).transform("float")(image)
    theirs = create_transform(**config)(image)
    assert meta.crop_pct == pytest.approx(config["crop_pct"], abs=0.01)
    _close_to_pillows(ours, theirs)
