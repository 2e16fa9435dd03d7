"""timm-style ('timm_increasing') RandAugment: the same operations and strengths as timm's own, pixel for pixel."""

import numpy as np
import pytest

from clsctl.data.preprocessing import validate_steps
from clsctl.errors import RecipeError
from PIL import Image

from clsctl.data import rand_augment as R
from clsctl.data.dataset_base import seed_sample
from clsctl.data.transforms import build_step

# clsctl name -> timm's name in _RAND_INCREASING_TRANSFORMS (the list MMPretrain's 'timm_increasing' refers to)
TIMM_NAMES = {"AutoContrast": "AutoContrast", "Equalize": "Equalize", "Invert": "Invert", "Rotate": "Rotate",
              "Posterize": "PosterizeIncreasing", "Solarize": "SolarizeIncreasing", "SolarizeAdd": "SolarizeAdd",
              "Color": "ColorIncreasing", "Contrast": "ContrastIncreasing", "Brightness": "BrightnessIncreasing",
              "Sharpness": "SharpnessIncreasing", "ShearX": "ShearX", "ShearY": "ShearY",
              "TranslateX": "TranslateXRel", "TranslateY": "TranslateYRel"}
FILL = (124, 116, 104)  # MMPretrain's pad_val: the ImageNet mean colour


def _image(width: int = 40, height: int = 32, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_operation_list_is_timms_increasing_list() -> None:
    timm_aa = pytest.importorskip("timm.data.auto_augment")
    assert [TIMM_NAMES[n] for n in R.OPERATIONS] == timm_aa._RAND_INCREASING_TRANSFORMS


@pytest.mark.parametrize("name", list(TIMM_NAMES))
@pytest.mark.parametrize("magnitude", [3, 9])
@pytest.mark.parametrize("sign", [1, -1])
def test_each_operation_equals_timms_at_the_same_magnitude_and_sign(name: str, magnitude: int, sign: int,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    timm_aa = pytest.importorskip("timm.data.auto_augment")
    monkeypatch.setattr(timm_aa, "_randomly_negate", lambda v: sign * v)
    monkeypatch.setattr(R, "_signed", lambda v: sign * v)
    op = timm_aa.AugmentOp(TIMM_NAMES[name], prob=1.0, magnitude=magnitude,
                           hparams={"img_mean": FILL, "interpolation": Image.Resampling.BICUBIC})
    image = _image()
    ours = R.OPERATIONS[name](image, magnitude / 10, Image.Resampling.BICUBIC, FILL)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(op(image)))


def test_strengths_follow_the_documented_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(R, "_signed", lambda v: v)
    image = _image()
    posterized = np.asarray(R.OPERATIONS["Posterize"](image, 0.5, 0, FILL))  # 4 - int(2) = 2 bits kept
    assert set(np.unique(posterized)) <= {0, 64, 128, 192}
    solarized = np.asarray(R.OPERATIONS["Solarize"](image, 0.5, 0, FILL))  # threshold 128
    source = np.asarray(image)
    np.testing.assert_array_equal(solarized, np.where(source >= 128, 255 - source, source))
    shifted = np.asarray(R.OPERATIONS["TranslateX"](image, 1.0, 0, FILL))  # 0.45 x 40 = 18 pixels
    assert (shifted[:, -18:] == FILL).all() and not (shifted[:, :-18] == FILL).all()
    assert np.asarray(R.OPERATIONS["Brightness"](image, 1.0, 0, FILL)).mean() != source.mean()


def test_magnitude_noise_is_clipped_and_ops_apply_half_the_time() -> None:
    augment = R.TimmRandAugment(num_ops=1, magnitude=9, max_level=10, magnitude_std=0.5)
    seed_sample(0)
    strengths = [augment.strength() for _ in range(2000)]
    assert max(strengths) == 1.0 and 0.88 < float(np.mean(strengths)) < 0.91 and np.std(strengths) > 0.03
    assert R.TimmRandAugment(magnitude=9, max_level=10).strength() == 0.9  # no noise without magnitude_std
    image = _image(width=24, height=24, seed=3)
    seed_sample(1)
    unchanged = sum(np.array_equal(np.asarray(augment(image)), np.asarray(image)) for _ in range(400))
    assert 150 < unchanged < 250  # one op, applied with probability 1/2 (a few ops can leave this image as is)


def test_recipe_entry_builds_it_seeded_and_validates_options() -> None:
    (entry,) = validate_steps([{"type": "rand_augment", "policy": "timm_increasing", "num_ops": 2,
                                     "magnitude": 9, "num_magnitude_bins": 11, "magnitude_std": 0.5,
                                     "interpolation": "bicubic", "fill": list(FILL)}])
    step = build_step(entry)
    assert isinstance(step, R.TimmRandAugment)
    assert (step.num_ops, step.magnitude, step.max_level, step.magnitude_std, step.fill) == (2, 9, 10, 0.5, FILL)
    image = _image()
    runs = []
    for seed in (4, 4, 5):
        seed_sample(seed)
        runs.append(np.asarray(step(image)))
    np.testing.assert_array_equal(runs[0], runs[1])

    with pytest.raises(RecipeError, match="magnitude_std needs policy timm_increasing"):
        validate_steps([{"type": "rand_augment", "magnitude_std": 0.5}])
    with pytest.raises(RecipeError):
        validate_steps([{"type": "rand_augment", "fill": [0, 0, 300]}])
    torchvision_step = build_step(validate_steps([{"type": "rand_augment", "fill": list(FILL)}])[0])
    assert torchvision_step.fill == list(FILL)
