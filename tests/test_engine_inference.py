"""load_for_inference: model, class names and eval transform from a checkpoint, a registered name or a recipe,
compared with what predict, vis-cam, get-flops, benchmark, export and test built themselves before."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from deploy_helpers import make_checkpoint
from helpers import CLASSES, write_image_folder
from PIL import Image

from clsctl.data.transforms import build_pipeline, eval_pipeline
from clsctl.engine.build import model_from_checkpoint, preprocessing, transform_from_preprocessing
from clsctl.engine.inference import (
    InferenceModel,
    choose_model,
    load_for_inference,
    load_from_options,
    named_class_names,
    named_preprocessing,
    source_kind,
)
from clsctl.errors import ClsctlError
from clsctl.models import create_model, model_info


def _image(size: tuple[int, int] = (40, 52)) -> Image.Image:
    pixels = torch.arange(size[0] * size[1] * 3, dtype=torch.int64).reshape(size[0], size[1], 3) % 251
    return Image.fromarray(pixels.to(torch.uint8).numpy())


def test_checkpoint_gives_its_model_classes_and_transform(tmp_path: Path) -> None:
    checkpoint = make_checkpoint(tmp_path)
    loaded = load_for_inference(checkpoint)
    reference = model_from_checkpoint(checkpoint)  # what predict, cam, flops, export and test loaded before
    assert isinstance(loaded, InferenceModel) and loaded.kind == "checkpoint"
    assert loaded.class_names == sorted(CLASSES) and loaded.model_name == "test_resnet"
    assert loaded.input_size == (32, 32) and not loaded.model.training and not loaded.multi_label
    assert loaded.recipe.model.name == "test_resnet" and loaded.checkpoint["epoch"] == 1
    assert loaded.preprocessing == reference.preprocessing and loaded.device == torch.device("cpu")
    image = _image()
    tensor = loaded.transform(image)
    assert tensor.shape == (3, 32, 32)
    assert torch.equal(tensor, transform_from_preprocessing(reference.preprocessing)(image))
    batch = torch.stack([tensor, tensor.flip(2)])
    with torch.no_grad():
        assert torch.equal(loaded.model(batch), reference.model(batch))
    assert [type(s).__name__ for s in loaded.pipeline] == ["Resize"] and loaded.channel_order == "rgb"
    assert loaded.mean == list(reference.preprocessing["mean"])
    assert load_for_inference(str(checkpoint), kind="checkpoint").class_names == loaded.class_names


def test_registered_name_gives_the_published_eval_transform(tmp_path: Path) -> None:
    meta = model_info("test_resnet")
    loaded = load_for_inference("test_resnet", seed=0)
    assert loaded.kind == "model" and loaded.recipe is None and loaded.checkpoint == {}
    assert loaded.class_names == [f"class_{i}" for i in range(10)] and loaded.input_size == (32, 32)
    image = _image()
    before = build_pipeline(eval_pipeline(meta), meta.mean, meta.std)  # predict's transform for a name
    assert torch.equal(loaded.transform(image), before(image)) and loaded.transform(image).shape == (3, 32, 32)
    # vis-cam's own copy: shorter side to round(size / 0.875), bilinear, centre crop; the same for this model
    steps = [step.model_dump() for step in loaded.pipeline]
    assert steps[0]["size"] == round(32 / 0.875) and steps[0]["interpolation"] == "bilinear"
    assert steps[1]["size"] == (32, 32)
    torch.manual_seed(0)
    reference = create_model("test_resnet").eval()  # get-flops and benchmark built it so
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), reference(x))


def test_name_with_weights_file_and_class_count(tmp_path: Path) -> None:
    torch.manual_seed(3)
    trained = create_model("test_resnet", num_classes=4).eval()
    weights = tmp_path / "w.pt"
    torch.save(trained.state_dict(), weights)
    loaded = load_for_inference("test_resnet", weights=weights, num_classes=4)
    assert loaded.class_names == ["class_0", "class_1", "class_2", "class_3"]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), trained(x))


def test_seed_is_reproducible_and_leaves_the_global_generator_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = load_for_inference("test_resnet", seed=7)
    assert torch.equal(torch.rand(3), expected)
    second = load_for_inference("test_resnet", seed=7)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)


def test_imagenet_names_and_eval_crop_of_published_weights() -> None:
    from clsctl.data.imagenet_classes import imagenet_class_names

    assert named_class_names(model_info("resnet18"), 1000) == imagenet_class_names()
    assert named_class_names(model_info("resnet18"), 7) == [f"class_{i}" for i in range(7)]
    assert named_class_names(model_info("test_resnet"), 1000)[:2] == ["class_0", "class_1"]
    prep = named_preprocessing(model_info("efficientnet_b0"))  # torchvision: resize 256 bicubic, crop 224
    assert prep["pipeline"][0]["size"] == 256 and prep["pipeline"][0]["interpolation"] == "bicubic"
    assert prep["pipeline"][1]["size"] == [224, 224] and prep["input_size"] == [224, 224]
    assert prep["channel_order"] == "rgb" and prep["mean"] == list(model_info("efficientnet_b0").mean)


def test_recipe_source_counts_classes_from_its_dataset(tiny_recipe: Path) -> None:
    from clsctl.recipe import load_recipe

    loaded = load_for_inference(tiny_recipe, load_weights=False)
    assert loaded.kind == "recipe" and loaded.class_names == sorted(CLASSES) and loaded.model_name == "test_resnet"
    assert loaded.preprocessing == preprocessing(load_recipe(tiny_recipe)) and loaded.input_size == (32, 32)
    with torch.no_grad():
        assert loaded.model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    five = load_for_inference(str(tiny_recipe), overrides=("model.num_classes=5",), load_weights=False)
    assert five.class_names == [f"class_{i}" for i in range(5)]
    recipe = load_recipe(tiny_recipe)
    assert load_for_inference(recipe, num_classes=2).model.fc.out_features == 2


def test_source_kind(tmp_path: Path) -> None:
    existing = tmp_path / "weights"
    existing.write_bytes(b"x")
    assert [source_kind(s) for s in ("a.yaml", "b.YML", "c.pt", "d.pth", "e.ckpt", "f.bin", str(existing))] == [
        "recipe", "recipe", "checkpoint", "checkpoint", "checkpoint", "checkpoint", "checkpoint"]
    assert source_kind("resnet50") == "model" and source_kind("timm/resnet18") == "model"


def test_errors_are_the_callers_messages(tmp_path: Path) -> None:
    with pytest.raises(ClsctlError, match="not found"):
        load_for_inference(tmp_path / "missing.pt")
    not_a_checkpoint = tmp_path / "x.pt"
    not_a_checkpoint.write_text("hello")
    with pytest.raises(ClsctlError, match="x.pt"):
        load_for_inference(not_a_checkpoint)
    with pytest.raises(ClsctlError, match="did you mean"):
        load_for_inference("test_resnt")
    checkpoint = make_checkpoint(tmp_path)
    with pytest.raises(ClsctlError, match="go with a model name"):
        load_for_inference(checkpoint, num_classes=3)
    with pytest.raises(ClsctlError, match="not both"):
        choose_model(checkpoint, "test_resnet", None, False)
    with pytest.raises(ClsctlError, match="go with --model"):
        choose_model(checkpoint, None, None, True)
    with pytest.raises(ClsctlError, match="needs --model"):
        choose_model(None, None, tmp_path / "w.pt", False)


def test_load_from_options_follows_the_flags(tmp_path: Path) -> None:
    checkpoint = make_checkpoint(tmp_path)
    assert load_from_options(checkpoint=checkpoint).class_names == sorted(CLASSES)
    named = load_from_options(model="test_resnet", num_classes=3)
    assert named.kind == "model" and len(named.class_names) == 3


@pytest.mark.slow
def test_predict_and_cam_agree_with_the_loader(tmp_path: Path) -> None:
    from clsctl.analysis.cam import visualize_cam
    from clsctl.engine.predict import predict

    checkpoint = make_checkpoint(tmp_path)
    image = write_image_folder(tmp_path / "imgs", per_class=1) / "red" / "0.png"
    loaded = load_for_inference(checkpoint)
    from clsctl.readers import read_image

    with torch.no_grad():
        probs = loaded.model(loaded.transform(read_image(image)).unsqueeze(0)).softmax(1)[0]
    top = predict([image], checkpoint=checkpoint, topk=3, device="cpu")[0].topk
    assert [i for i, _, _ in top] == probs.argsort(descending=True).tolist()
    assert top[0][2] == pytest.approx(float(probs.max()))
    cam = visualize_cam(image, checkpoint=checkpoint, save_path=tmp_path / "cam.png", device="cpu")
    assert cam.predicted == top[0][0] and cam.score == pytest.approx(top[0][2], rel=1e-5)
    assert cam.cam.shape == (32, 32)
