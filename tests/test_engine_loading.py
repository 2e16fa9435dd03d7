"""load_model: one model-for-use type (module, class names, preprocessing, multi-label flag, origin) from a
checkpoint, a safetensors export, a registered name (with weights, or a clsctl file as weights) or a recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from deploy_helpers import make_checkpoint
from helpers import CLASSES, write_image_folder

from clsctl.data.preprocessing import Preprocessing
from clsctl.engine.loading import (LoadedModel, choose_model, load_from_options, load_model, named_class_names,
                                   refuse_other_overrides, source_kind)
from clsctl.errors import ClsctlError, RecipeError
from clsctl.models import create_model, model_info
from clsctl.readers import read_checkpoint


def _image(size: tuple[int, int] = (40, 52)) -> torch.Tensor:
    pixels = torch.arange(size[0] * size[1] * 3, dtype=torch.int64).reshape(3, size[0], size[1]) % 251
    return pixels.to(torch.uint8)


def test_checkpoint_gives_its_model_classes_and_preprocessing(tmp_path: Path) -> None:
    checkpoint = make_checkpoint(tmp_path)
    loaded = load_model(checkpoint)
    ckpt = read_checkpoint(checkpoint)
    assert isinstance(loaded, LoadedModel) and loaded.origin.kind == "checkpoint" and loaded.is_pytorch
    assert loaded.class_names == sorted(CLASSES) and loaded.model_name == "test_resnet"
    assert loaded.input_size == (32, 32) and not loaded.module.training and not loaded.multi_label
    assert loaded.recipe.model.name == "test_resnet" and loaded.info["epoch"] == 1
    assert loaded.preprocessing == Preprocessing.from_dict(ckpt["preprocessing"])
    assert loaded.device == torch.device("cpu")
    uint8 = loaded.preprocessing.transform("uint8")(_image())
    assert uint8.dtype == torch.uint8 and uint8.shape == (3, 32, 32)
    floats = loaded.preprocessing.transform("float")(_image())
    batch, _ = loaded.preprocessing.device_input()(uint8[None], None, torch.device("cpu"))
    assert torch.equal(batch[0], floats)  # the loop's batch normalisation = the single-image transform
    model = create_model("test_resnet", num_classes=3).eval()
    model.load_state_dict(ckpt["model"])
    with torch.no_grad():
        assert torch.equal(loaded.module(batch), model(batch))
    assert [type(s).__name__ for s in loaded.preprocessing.steps] == ["Resize"]
    assert load_model(str(checkpoint), kind="checkpoint").class_names == loaded.class_names


def test_registered_name_gives_the_published_eval_transform() -> None:
    loaded = load_model("test_resnet", seed=0)
    assert loaded.origin.kind == "model" and loaded.recipe is None and loaded.info == {}
    assert loaded.class_names == [f"class_{i}" for i in range(10)] and loaded.input_size == (32, 32)
    prep = loaded.preprocessing
    assert prep.resize == round(32 / 0.875) and prep.interpolation == "bilinear" and prep.crop == (32, 32)
    assert prep == Preprocessing.from_meta(model_info("test_resnet"))
    assert loaded.preprocessing.transform("float")(_image()).shape == (3, 32, 32)
    torch.manual_seed(0)
    reference = create_model("test_resnet").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), reference(x))


def test_name_with_weights_file_and_class_count(tmp_path: Path) -> None:
    torch.manual_seed(3)
    trained = create_model("test_resnet", num_classes=4).eval()
    weights = tmp_path / "w.pt"
    torch.save(trained.state_dict(), weights)
    loaded = load_model("test_resnet", weights=weights, num_classes=4)
    assert loaded.class_names == ["class_0", "class_1", "class_2", "class_3"]
    assert loaded.origin.weights == str(weights)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), trained(x))


def test_a_clsctl_checkpoint_as_weights_keeps_its_classes_and_preprocessing(tmp_path: Path) -> None:
    checkpoint = make_checkpoint(tmp_path)
    direct = load_model(checkpoint)
    named = load_model("test_resnet", weights=checkpoint)
    assert named.class_names == direct.class_names and named.preprocessing == direct.preprocessing
    assert named.origin.weights == str(checkpoint) and named.recipe is not None
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(named.module(x), direct.module(x))
    with pytest.raises(ClsctlError, match="holds a test_resnet model, not resnet18"):
        load_model("resnet18", weights=checkpoint)
    with pytest.raises(ClsctlError, match="--num-classes 7, but --weights .* has 3 classes"):
        load_model("test_resnet", weights=checkpoint, num_classes=7)


def test_a_safetensors_export_loads_as_its_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    from clsctl.deploy.export import export_checkpoint

    checkpoint = make_checkpoint(tmp_path)
    file = export_checkpoint(checkpoint, "safetensors", out=tmp_path / "m.safetensors").path
    folder = export_checkpoint(checkpoint, "safetensors", out=tmp_path / "repo").path.parent
    direct = load_model(checkpoint)
    x = torch.randn(2, 3, 32, 32)
    for source in (file, folder):
        loaded = load_model(source)
        assert loaded.origin.kind == "safetensors" and loaded.class_names == direct.class_names
        assert loaded.preprocessing == direct.preprocessing and loaded.model_name == "test_resnet"
        with torch.no_grad():
            assert torch.equal(loaded.module(x), direct.module(x))
    by_name = load_model("test_resnet", weights=file)  # the export as --weights: its classes, not class_<i>
    assert by_name.class_names == direct.class_names


def test_plain_safetensors_weights_are_refused_as_a_model(tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    from clsctl.models.safetensors_io import write_safetensors

    path = write_safetensors(create_model("test_resnet").state_dict(), tmp_path / "plain.safetensors")
    with pytest.raises(ClsctlError, match="without clsctl's metadata .* --model NAME --weights"):
        load_model(path)
    assert load_model("test_resnet", weights=path).class_names[:1] == ["class_0"]


def test_overrides_change_the_preprocessing_and_hand_back_the_rest(tmp_path: Path) -> None:
    loaded = load_model(make_checkpoint(tmp_path))
    changed, rest = loaded.with_overrides(["data.mean=[0,0,0]", "data.loader.batch_size=2"])
    assert changed.preprocessing.mean == (0.0, 0.0, 0.0) and loaded.preprocessing.mean != (0.0, 0.0, 0.0)
    assert rest == ["data.loader.batch_size=2"] and changed.preprocessing.overrides == ("data.mean=[0,0,0]",)
    with pytest.raises(RecipeError, match="--set data.loader.batch_size: infer cannot change this key"):
        refuse_other_overrides(rest, "infer")


def test_seed_is_reproducible_and_leaves_the_global_generator_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = load_model("test_resnet", seed=7)
    assert torch.equal(torch.rand(3), expected)
    second = load_model("test_resnet", seed=7)
    for a, b in zip(first.module.state_dict().values(), second.module.state_dict().values()):
        assert torch.equal(a, b)


def test_imagenet_names_of_published_weights() -> None:
    from clsctl.data.imagenet_classes import imagenet_class_names

    assert named_class_names(model_info("resnet18"), 1000) == imagenet_class_names()
    assert named_class_names(model_info("resnet18"), 7) == [f"class_{i}" for i in range(7)]
    assert named_class_names(model_info("test_resnet"), 1000)[:2] == ["class_0", "class_1"]
    prep = Preprocessing.from_meta(model_info("efficientnet_b0"))  # torchvision: resize 256 bicubic, crop 224
    assert prep.resize == 256 and prep.interpolation == "bicubic" and prep.crop == (224, 224)
    assert prep.channel_order == "rgb" and prep.mean == tuple(model_info("efficientnet_b0").mean)


def test_recipe_source_counts_classes_from_its_dataset(tiny_recipe: Path) -> None:
    from clsctl.recipe import load_recipe

    loaded = load_model(tiny_recipe, load_weights=False)
    assert loaded.origin.kind == "recipe" and loaded.class_names == sorted(CLASSES)
    assert loaded.preprocessing == Preprocessing.from_recipe(load_recipe(tiny_recipe)) and loaded.input_size == (32, 32)
    with torch.no_grad():
        assert loaded.module(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    five = load_model(str(tiny_recipe), overrides=("model.num_classes=5",), load_weights=False)
    assert five.class_names == [f"class_{i}" for i in range(5)]
    assert load_model(load_recipe(tiny_recipe), num_classes=2).module.fc.out_features == 2


def test_source_kind(tmp_path: Path) -> None:
    existing = tmp_path / "weights"
    existing.write_bytes(b"x")
    assert [source_kind(s) for s in ("a.yaml", "b.YML", "c.pt", "d.pth", "e.ckpt", "f.bin", str(existing))] == [
        "recipe", "recipe", "checkpoint", "checkpoint", "checkpoint", "checkpoint", "checkpoint"]
    assert [source_kind(s) for s in ("m.onnx", "m.pt2", "m.xml", "m.safetensors")] == [
        "onnx", "pt2", "openvino", "safetensors"]
    assert source_kind("resnet50") == "model" and source_kind("timm/resnet18") == "model"


def test_errors_are_the_callers_messages(tmp_path: Path) -> None:
    with pytest.raises(ClsctlError, match="not found"):
        load_model(tmp_path / "missing.pt")
    not_a_checkpoint = tmp_path / "x.pt"
    not_a_checkpoint.write_text("hello")
    with pytest.raises(ClsctlError, match="x.pt"):
        load_model(not_a_checkpoint)
    with pytest.raises(ClsctlError, match="did you mean"):
        load_model("test_resnt")
    checkpoint = make_checkpoint(tmp_path)
    with pytest.raises(ClsctlError, match="go with a model name"):
        load_model(checkpoint, num_classes=3)
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
    assert named.origin.kind == "model" and len(named.class_names) == 3


@pytest.mark.slow
def test_predict_and_cam_agree_with_the_loader(tmp_path: Path) -> None:
    from clsctl.analysis.cam import visualize_cam
    from clsctl.engine.evaluate import predict
    from clsctl.readers import read_image_tensor

    checkpoint = make_checkpoint(tmp_path)
    image = write_image_folder(tmp_path / "imgs", per_class=1) / "red" / "0.png"
    loaded = load_model(checkpoint)
    with torch.no_grad():
        probs = loaded.module(loaded.preprocessing.transform("float")(read_image_tensor(image)).unsqueeze(0)).softmax(1)[0]
    top = predict([image], loaded, topk=3)[0].topk
    assert [i for i, _, _ in top] == probs.argsort(descending=True).tolist()
    assert top[0][2] == pytest.approx(float(probs.max()), abs=1e-6)
    assert predict([image], checkpoint=checkpoint, topk=3)[0].topk == top
    cam = visualize_cam(image, loaded, save_path=tmp_path / "cam.png")
    assert cam.predicted == top[0][0] and cam.score == pytest.approx(top[0][2], rel=1e-5)
    assert cam.cam.shape == (32, 32)
