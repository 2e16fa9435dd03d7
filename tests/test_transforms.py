"""Transform steps and pipelines: stages, channel order, EfficientNet crops, ResizeEdge, Lighting, auto-augment."""

import math

import numpy as np
import pytest

from clsctl.data.preprocessing import validate_steps
from clsctl.errors import RecipeError
import torch
from PIL import Image
from torchvision import transforms as T

from clsctl.data.transforms import (ClippedBoxErasing, EfficientNetCenterCrop, EfficientNetRandomCrop, Lighting, SwapRB, build_pipeline,
                                    build_step, default_pipeline, efficientnet_center_box)
from clsctl.data.dataset_base import seed_sample


def _image(width: int = 48, height: int = 40, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _steps(*entries: dict) -> list:
    return validate_steps(list(entries))


MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def test_tensor_steps_run_after_to_tensor_and_normalize_whatever_their_position() -> None:
    steps = _steps({"type": "random_erasing", "prob": 1.0}, {"type": "lighting"}, {"type": "center_crop", "size": 8},
                   {"type": "random_horizontal_flip"})
    names = [type(t).__name__ for t in build_pipeline(steps, MEAN, STD).transforms]
    assert names == ["ToImageTensor", "CenterCrop", "RandomHorizontalFlip", "ToFloat", "Lighting", "Normalize",
                     "RandomErasing"]


def test_channel_order_bgr_swaps_after_normalizing_in_rgb() -> None:
    image = _image()
    steps = _steps({"type": "center_crop", "size": 16})
    rgb = build_pipeline(steps, MEAN, STD)(image)
    bgr = build_pipeline(steps, MEAN, STD, channel_order="bgr")(image)
    torch.testing.assert_close(bgr, rgb.flip(0))
    assert not torch.equal(bgr, rgb)
    assert type(build_pipeline(steps, MEAN, STD, channel_order="bgr").transforms[-1]) is SwapRB
    with pytest.raises(ValueError, match="channel_order"):
        build_pipeline(steps, MEAN, STD, channel_order="rbg")


def test_default_pipeline_resizes_to_the_input_size() -> None:
    out = build_pipeline(default_pipeline((24, 20)), MEAN, STD)(_image())
    assert out.shape == (3, 24, 20)


@pytest.mark.parametrize(("edge", "size", "expected"), [("short", 25, (30, 25)), ("long", 24, (24, 20)),
                                                         ("width", 30, (30, 25)), ("height", 10, (12, 10))])
def test_resize_edge(edge: str, size: int, expected: tuple[int, int]) -> None:
    step = build_step(_steps({"type": "resize_edge", "size": size, "edge": edge})[0])
    assert step(_image(width=60, height=50)).size == expected


def test_efficientnet_center_crop_box_and_output() -> None:
    assert efficientnet_center_box(320, 256, 224, 32) == (16, 48, 224)  # 224/256 of the 256-pixel short edge
    image = _image(width=80, height=64)
    out = EfficientNetCenterCrop(32, 32, "bilinear")(image)
    top, left, side = efficientnet_center_box(80, 64, 32, 32)
    assert side == 32 and out.size == (32, 32)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(image)[top:top + side, left:left + side])


def test_efficientnet_random_crop_boxes_respect_scale_ratio_and_coverage() -> None:
    crop = EfficientNetRandomCrop(16, scale=(0.2, 0.6), ratio=(0.5, 2.0), min_covered=0.25)
    torch.manual_seed(0)
    boxes = [crop.box(100, 80) for _ in range(200)]
    found = [b for b in boxes if b is not None]
    assert len(found) > 150
    for top, left, h, w in found:
        assert 0 <= top <= 80 - h and 0 <= left <= 100 - w
        assert w * h >= 0.25 * 8000 and w * h <= 0.6 * 8000 * 1.05
        assert 0.5 * 0.9 <= w / h <= 2.0 * 1.1
    assert crop(_image(width=100, height=80)).size == (16, 16)


def test_efficientnet_random_crop_falls_back_to_the_center_crop() -> None:
    # boxes of at most 2 % of the area never cover the required 50 %: every attempt fails
    crop = EfficientNetRandomCrop(16, scale=(0.01, 0.02), min_covered=0.5, interpolation="bilinear")
    image = _image(width=64, height=48)
    assert crop.box(64, 48) is None
    expected = EfficientNetCenterCrop(16, 32, "bilinear")(image)
    np.testing.assert_array_equal(np.asarray(crop(image)), np.asarray(expected))


def test_lighting_adds_the_pca_offset() -> None:
    lighting = build_step(_steps({"type": "lighting", "alphastd": 0.5})[0]).transform
    tensor = torch.rand(3, 4, 4)
    torch.manual_seed(3)
    out = lighting(tensor)
    torch.manual_seed(3)
    alpha = torch.randn(3) * 0.5
    expected = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]) @ (
        alpha * torch.tensor([0.2175, 0.0188, 0.0045]))
    torch.testing.assert_close(out - tensor, expected[:, None, None].expand(3, 4, 4))
    assert torch.equal(Lighting(0.0, [1, 1, 1], np.eye(3).tolist())(tensor), tensor)


def test_random_erasing_erases_a_box_of_the_normalized_tensor() -> None:
    steps = _steps({"type": "random_erasing", "prob": 1.0, "scale": [0.2, 0.3], "value": 0})
    torch.manual_seed(0)
    out = build_pipeline(steps, MEAN, STD)(_image(width=20, height=20, seed=1))
    zero_share = (out == 0).all(0).float().mean().item()
    assert 0.15 <= zero_share <= 0.35
    # step by step on a PIL image (browse-dataset does that) it works too
    assert isinstance(build_step(steps[0])(_image()), Image.Image)


def test_clipped_box_erasing_draws_mmpretrains_box_and_always_erases() -> None:
    erase = ClippedBoxErasing(1.0, (0.02, 1 / 3), (0.3, 10 / 3), "random")
    seed_sample(0)
    boxes = [erase.box(20, 30) for _ in range(2000)]
    assert all(0 <= t and 0 <= l and 1 <= h <= 20 and 1 <= w <= 30 and t + h <= 20 and l + w <= 30
               for t, l, h, w in boxes)
    shares = np.array([h * w / 600 for _, _, h, w in boxes])
    assert 0.15 < shares.mean() < 0.19  # area uniform in [0.02, 1/3] of the image (mean 0.177), clipping aside
    aspects = np.log([h / w for _, _, h, w in boxes if h < 20 and w < 30])
    assert abs(np.median(aspects)) < 0.15  # log-uniform aspect in [0.3, 10/3]: symmetric around 1
    assert any(h == 20 for _, _, h, _ in boxes)  # tall boxes are clipped, not redrawn
    tensor = torch.zeros(3, 20, 30)
    erased = [int((erase(tensor) != 0).any(0).sum()) for _ in range(50)]
    assert min(erased) > 0  # prob 1: every image is erased (torchvision's may skip)
    constant = ClippedBoxErasing(1.0, (0.5, 0.5), (1.0, 1.0), 2.5)(torch.zeros(3, 10, 10))
    assert set(constant.unique().tolist()) == {0.0, 2.5} and int((constant == 2.5).all(0).sum()) == 49
    assert ClippedBoxErasing(0.0, (0.5, 0.5), (1.0, 1.0))(tensor) is tensor
    (step,) = _steps({"type": "random_erasing", "prob": 0.3, "box": "clip", "value": "random"})
    built = build_step(step)
    assert isinstance(built.transform, ClippedBoxErasing) and built.transform.prob == 0.3


@pytest.mark.parametrize("entry", [{"type": "rand_augment", "num_ops": 2, "magnitude": 9},
                                   {"type": "auto_augment", "policy": "imagenet"},
                                   {"type": "trivial_augment"}])
def test_auto_augment_family_is_seeded_and_changes_images(entry: dict) -> None:
    step = build_step(_steps(entry)[0])
    image = _image(width=32, height=32, seed=4)
    outputs = []
    for seed in (5, 5, 6, 7, 8):
        seed_sample(seed)
        outputs.append(np.asarray(step(image)))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert all(o.shape == (32, 32, 3) for o in outputs)
    assert any(not np.array_equal(o, np.asarray(image)) for o in outputs)


def test_built_types_and_options() -> None:
    rand = build_step(_steps({"type": "rand_augment", "num_ops": 3, "magnitude": 5})[0])
    assert isinstance(rand, T.RandAugment) and rand.num_ops == 3 and rand.magnitude == 5
    auto = build_step(_steps({"type": "auto_augment"})[0])
    assert isinstance(auto, T.AutoAugment) and auto.policy == T.AutoAugmentPolicy.IMAGENET
    rrc = build_step(_steps({"type": "random_resized_crop", "size": 8, "scale": [0.5, 1.0], "ratio": [1.0, 1.0],
                             "interpolation": "bicubic"})[0])
    assert rrc.scale == (0.5, 1.0) and rrc.interpolation == T.InterpolationMode.BICUBIC
    crop = build_step(_steps({"type": "random_crop", "size": 8, "padding": 4, "padding_mode": "reflect"})[0])
    assert crop.padding == [4, 4, 4, 4] and crop.padding_mode == "reflect"  # v2 keeps all four sides


def test_schema_rejects_bad_options() -> None:
    with pytest.raises(RecipeError, match="magnitude"):
        _steps({"type": "rand_augment", "magnitude": 40})
    with pytest.raises(RecipeError):
        _steps({"type": "resize_edge", "size": 8, "edge": "middle"})
    with pytest.raises(RecipeError):
        _steps({"type": "random_erasing", "value": "noise"})


def test_every_transform_round_trips_through_plain_data() -> None:
    entries = [{"type": t, "size": 8} for t in ("resize", "resize_edge", "random_resized_crop", "center_crop",
                                                 "random_crop", "efficientnet_random_crop", "efficientnet_center_crop")]
    entries += [{"type": t} for t in ("random_horizontal_flip", "random_vertical_flip", "color_jitter",
                                      "random_grayscale", "rand_augment", "auto_augment", "trivial_augment",
                                      "lighting", "random_erasing")]
    entries.append({"type": "random_rotation", "degrees": 10})
    steps = _steps(*entries)
    again = validate_steps([s.model_dump(mode="json") for s in steps])
    assert again == steps
    out = build_pipeline(steps, MEAN, STD)(_image(width=40, height=40))
    assert out.shape == (3, 8, 8) and math.isfinite(float(out.sum()))


# --------------------------------------------------------------------------- tensor steps vs the PIL steps before


def _photo(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """Smooth colours with mild noise: interpolation differences stay small, as on photos."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.BICUBIC), dtype=np.int16)
    return Image.fromarray(np.clip(smooth + rng.integers(-6, 7, smooth.shape), 0, 255).astype(np.uint8))


_BI, _NEAREST = T.InterpolationMode.BILINEAR, T.InterpolationMode.NEAREST
# (recipe entry, the torchvision v1 transform on PIL images that clsctl used for it before (None: clsctl's own
# class, which still takes PIL images), largest mean |difference| in grey levels, largest single difference)
PIL_REFERENCES = [
    ({"type": "resize", "size": 20}, T.Resize(20, _BI), 1.0, 12),
    ({"type": "resize", "size": 80, "interpolation": "bicubic"}, T.Resize(80, T.InterpolationMode.BICUBIC), 1.0, 12),
    # Pillow's fixed-point arithmetic takes the neighbouring pixel where a source position is exactly .5
    ({"type": "resize", "size": 20, "interpolation": "nearest"}, T.Resize(20, _NEAREST), 2.0, 64),
    ({"type": "resize", "size": 20, "interpolation": "lanczos"}, T.Resize(20, T.InterpolationMode.LANCZOS), 1.0, 12),
    ({"type": "random_resized_crop", "size": 24}, T.RandomResizedCrop(24), 1.0, 12),
    ({"type": "center_crop", "size": 30}, T.CenterCrop(30), 0.0, 0),
    ({"type": "random_crop", "size": 40, "padding": 4, "padding_mode": "reflect"},
     T.RandomCrop(40, padding=4, padding_mode="reflect"), 0.0, 0),
    ({"type": "random_horizontal_flip"}, T.RandomHorizontalFlip(), 0.0, 0),
    ({"type": "random_vertical_flip"}, T.RandomVerticalFlip(), 0.0, 0),
    ({"type": "color_jitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1},
     T.ColorJitter(0.4, 0.4, 0.4, 0.1), 1.0, 12),
    ({"type": "random_grayscale", "prob": 0.5}, T.RandomGrayscale(0.5), 1.0, 1),
    ({"type": "random_rotation", "degrees": 30}, T.RandomRotation(30), 2.0, 255),
    ({"type": "rand_augment", "num_ops": 2, "magnitude": 9}, T.RandAugment(2, 9, num_magnitude_bins=11), 2.0, 255),
    ({"type": "auto_augment"}, T.AutoAugment(), 2.0, 255),
    ({"type": "trivial_augment"}, T.TrivialAugmentWide(), 2.0, 255),
    ({"type": "resize_edge", "size": 30}, None, 1.0, 12),
    ({"type": "efficientnet_random_crop", "size": 24}, None, 1.0, 12),
    ({"type": "efficientnet_center_crop", "size": 24}, None, 1.0, 12),
]


@pytest.mark.parametrize(("entry", "reference", "mean_tol", "max_tol"), PIL_REFERENCES,
                         ids=[f"{e['type']}-{e.get('interpolation', '')}" for e, *_ in PIL_REFERENCES])
def test_tensor_step_matches_the_pil_step_of_the_same_seed(entry: dict, reference: object, mean_tol: float,
                                                          max_tol: int) -> None:
    from clsctl.data.decode import pil_to_tensor

    step = build_step(_steps(entry)[0])
    reference = reference or step  # clsctl's own classes: the same object, once on PIL, once on a tensor
    for seed in range(6):
        image = _photo(seed=seed)
        seed_sample(seed)
        expected = np.asarray(reference(image), dtype=np.int16)
        seed_sample(seed)
        out = step(pil_to_tensor(image))
        assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8
        got = out.permute(1, 2, 0).numpy().astype(np.int16)
        assert got.shape == expected.shape
        diff = np.abs(got - expected)
        assert diff.mean() <= mean_tol and diff.max() <= max_tol, (seed, diff.mean(), diff.max())


@pytest.mark.parametrize("value", [0.0, "random"])
def test_float_steps_match_the_v1_pipeline_of_the_same_seed(value: object) -> None:
    steps = _steps({"type": "center_crop", "size": 32}, {"type": "lighting"},
                   {"type": "random_erasing", "prob": 0.7, "value": value})
    reference = T.Compose([T.CenterCrop(32), T.ToTensor(), Lighting(0.1, steps[1].eigval, steps[1].eigvec),
                           T.Normalize(MEAN, STD), T.RandomErasing(0.7, scale=(0.02, 1 / 3), value=value)])
    pipeline = build_pipeline(steps, MEAN, STD, output="uint8")  # float steps: normalised on the CPU anyway
    for seed in range(6):
        image = _photo(seed=seed)
        seed_sample(seed)
        expected = reference(image)
        seed_sample(seed)
        torch.testing.assert_close(pipeline(image), expected)
