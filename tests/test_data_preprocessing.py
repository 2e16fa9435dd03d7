"""Preprocessing: made from a recipe, a model's metadata or a checkpoint; typed views; --set overrides; the
transforms it builds (and the test-time views built from it)."""

from __future__ import annotations

import pytest
import torch

from clsctl.data.preprocessing import Preprocessing, validate_steps
from clsctl.engine.tta import tta_transform
from clsctl.errors import ClsctlError, RecipeError
from clsctl.models import model_info
from clsctl.recipe import validate_recipe

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _recipe(**data: object) -> object:
    base = {"model": {"name": "test_resnet"}, "optim": {"type": "sgd", "lr": 0.1},
            "data": {"train": {"type": "image_folder", "root": "x"}, **data}}
    return validate_recipe(base)


def test_from_meta_is_the_published_resize_and_centre_crop() -> None:
    prep = Preprocessing.from_meta(model_info("resnet50"))
    assert prep.resize == 256 and prep.crop == (224, 224) and prep.crop_pct == 0.875
    assert prep.interpolation == "bilinear" and prep.input_size == (224, 224) and prep.split is None
    assert prep.mean == tuple(model_info("resnet50").mean) and prep.channel_order == "rgb"
    assert "resize(size=256" in prep.describe() and "center_crop(size=[224, 224])" in prep.describe()


def test_from_recipe_takes_test_then_val_then_a_plain_resize() -> None:
    val = {"type": "image_folder", "root": "v", "pipeline": [{"type": "resize", "size": 40},
                                                               {"type": "center_crop", "size": 36}]}
    prep = Preprocessing.from_recipe(_recipe(val=val, mean=list(MEAN), std=list(STD), channel_order="bgr"))
    assert prep.split == "val" and prep.resize == 40 and prep.crop == (36, 36) and prep.input_size == (36, 36)
    assert prep.mean == MEAN and prep.std == STD and prep.channel_order == "bgr"
    test = {"type": "image_folder", "root": "t", "pipeline": [{"type": "resize", "size": [20, 24]}]}
    both = Preprocessing.from_recipe(_recipe(val=val, test=test))
    assert both.split == "test" and both.resize == (20, 24) and both.crop is None and both.input_size == (20, 24)
    assert Preprocessing.from_recipe(_recipe(val=val, test=test), "val") == prep.__class__(
        prep.steps, tuple(model_info("test_resnet").mean), tuple(model_info("test_resnet").std), (36, 36), "rgb",
        "val")
    none = Preprocessing.from_recipe(_recipe())  # no evaluation split: resize to the model's input size
    assert none.resize == (32, 32) and none.split is None and none.mean == tuple(model_info("test_resnet").mean)
    empty = Preprocessing.from_recipe(_recipe(val={"type": "image_folder", "root": "v"}))
    assert empty.steps == none.steps and empty.split == "val"


def test_to_dict_and_back_and_the_older_form() -> None:
    prep = Preprocessing.standard((24, 28), mean=MEAN, std=STD, crop_pct=0.8, interpolation="bicubic")
    data = prep.to_dict()
    assert data["crop"] == [24, 28] and data["resize"] == 30 and data["interpolation"] == "bicubic"
    assert Preprocessing.from_dict(data) == prep
    old = {"pipeline": data["pipeline"], "mean": list(MEAN), "std": list(STD), "input_size": [24, 28]}
    assert Preprocessing.from_dict(old) == prep  # checkpoints written before split and the summary keys
    with pytest.raises(RecipeError, match="run/best.pt: its preprocessing is not a mapping"):
        Preprocessing.from_dict([1, 2], "run/best.pt")
    with pytest.raises(RecipeError, match="preprocessing.pipeline.0"):
        Preprocessing.from_dict({**data, "pipeline": [{"type": "resize"}]}, "ckpt")
    with pytest.raises(RecipeError, match="incomplete"):
        Preprocessing.from_dict({"pipeline": []}, "ckpt")


def test_uint8_transform_and_the_batch_normaliser_equal_the_float_transform() -> None:
    prep = Preprocessing.standard((16, 16), mean=MEAN, std=STD, channel_order="bgr")
    image = torch.randint(0, 256, (3, 21, 30), dtype=torch.uint8)
    uint8 = prep.transform("uint8")(image)
    assert uint8.dtype == torch.uint8 and uint8.shape == (3, 16, 16)
    batch, _ = prep.device_input()(uint8[None], None, torch.device("cpu"))
    assert torch.equal(batch[0], prep.transform("float")(image))
    assert torch.equal(prep.image_transform()(image), uint8)


def test_overrides_of_the_recipe_keys_and_the_shorthand() -> None:
    val = {"type": "image_folder", "root": "v", "pipeline": [{"type": "resize", "size": [32, 32]}]}
    prep = Preprocessing.from_recipe(_recipe(val=val))
    changed, rest = prep.with_overrides(["data.mean=[0,0,0]", "data.val.pipeline.0.size=8", "data.loader.batch_size=4",
                                         "model.name=resnet18"])
    assert changed.mean == (0.0, 0.0, 0.0) and changed.resize == 8 and changed.input_size == (8, 8)
    assert rest == ["data.loader.batch_size=4", "model.name=resnet18"]
    assert changed.overrides == ("data.mean=[0,0,0]", "data.val.pipeline.0.size=8")
    assert prep.with_overrides([])[0] is prep
    short, _ = prep.with_overrides(["preprocessing.crop_pct=0.5"])  # a plain resize becomes resize + crop
    assert short.crop == (32, 32) and short.resize == 64 and short.split == "val"
    bicubic, _ = short.with_overrides(["preprocessing.interpolation=bicubic", "preprocessing.resize=40"])
    assert bicubic.resize == 40 and bicubic.interpolation == "bicubic" and bicubic.crop == (32, 32)
    exact, _ = prep.with_overrides(["preprocessing.resize=[12, 20]"])
    assert exact.resize == (12, 20) and exact.crop is None and exact.input_size == (12, 20)
    with pytest.raises(RecipeError, match=r"comes from data.val.pipeline"):
        prep.with_overrides(["data.test.pipeline.0.size=8"])
    with pytest.raises(RecipeError, match="unknown preprocessing key"):
        prep.with_overrides(["preprocessing.size=8"])
    with pytest.raises(RecipeError, match="data.std: every value must be positive"):
        prep.with_overrides(["data.std=[0,1,1]"])
    with pytest.raises(RecipeError, match=r"data.val.pipeline.0"):
        prep.with_overrides(["data.val.pipeline.0.size=-3"])
    with pytest.raises(RecipeError, match="crop_pct: must be in"):
        prep.with_overrides(["preprocessing.crop_pct=2"])


def test_test_time_views() -> None:
    prep = Preprocessing.standard((16, 16), mean=MEAN, std=STD)
    image = torch.randint(0, 256, (3, 30, 40), dtype=torch.uint8)
    plain = prep.transform("uint8")(image)
    flip = tta_transform(prep, "flip")(image)
    assert flip.shape == (2, 3, 16, 16) and torch.equal(flip[0], plain) and torch.equal(flip[1], plain.flip(-1))
    ten = tta_transform(prep, "ten-crop")(image)
    five = tta_transform(prep, "five-crop")(image)
    assert ten.shape == (10, 3, 16, 16) and torch.equal(ten[:5], five) and torch.equal(five[4], plain)
    resized = Preprocessing.standard((16, 16), mean=MEAN, std=STD, crop_pct=None)  # a plain resize to 16x16
    crops = tta_transform(resized, "five-crop")(image)
    # the crops come from the image resized to 16 / 0.875 = 18 on its shorter edge
    assert crops.shape == (5, 3, 16, 16)
    larger = Preprocessing.standard((16, 16), mean=MEAN, std=STD, resize=18)
    assert torch.equal(crops[4], larger.transform("uint8")(image))
    odd = Preprocessing(tuple(validate_steps([{"type": "random_crop", "size": 8}])), MEAN, STD, (8, 8))
    with pytest.raises(ClsctlError, match="last image step is random_crop"):
        tta_transform(odd, "ten-crop")
