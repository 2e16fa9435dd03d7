"""evaluate(): metrics, per-class numbers, predictions file, other data roots."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from clsctl.engine.evaluate import evaluate, expand_images, predict
from clsctl.errors import DataError
from clsctl.errors import ClsctlError

from helpers import write_image_folder


def _scores(out: Path) -> "torch.Tensor":
    """The scores a predictions file keeps in its ``.scores.npy`` beside it."""
    import torch

    data = json.loads(out.read_text())
    return torch.from_numpy(np.load(out.with_name(data["scores_file"])))


def test_evaluate_checkpoint_on_its_val_split(trained_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.json"
    result = evaluate(trained_checkpoint, out=out, show_progress=False)
    assert result.num_samples == 12 and result.class_names == ["blue", "green", "red"]
    assert 0 <= result.metrics["accuracy/top1"] <= 100 and result.metrics["accuracy/top5"] == 100.0
    data = json.loads(out.read_text())
    predictions = data["predictions"]
    assert len(predictions) == 12 and _scores(out).shape == (12, 3) and data["scores_shape"] == [12, 3]
    correct = sum(p["label"] == p["pred"] for p in predictions)
    assert result.metrics["accuracy/top1"] == pytest.approx(100 * correct / 12)
    labels = [p["label"] for p in predictions]
    preds = [p["pred"] for p in predictions]
    precision, recall, f1, support = precision_recall_fscore_support(labels, preds, labels=[0, 1, 2], zero_division=0)
    assert result.per_class["precision"] == pytest.approx(list(precision * 100))
    assert result.per_class["recall"] == pytest.approx(list(recall * 100))
    assert result.per_class["f1"] == pytest.approx(list(f1 * 100))
    assert result.per_class["support"] == list(support)
    first = predictions[0]
    assert first["pred_name"] == data["class_names"][first["pred"]] and len(first["topk"]) == 3
    assert first["topk"][0]["probability"] >= first["topk"][1]["probability"]
    assert first["probability"] == pytest.approx(float(_scores(out)[0].max()))


def test_evaluate_on_another_folder_and_overrides(trained_checkpoint: Path, tmp_path: Path) -> None:
    other = write_image_folder(tmp_path / "other", per_class=2, seed=7)
    result = evaluate(trained_checkpoint, data_root=other, batch_size=2, show_progress=False)
    assert result.num_samples == 6
    # a wrapper dataset in the recipe gives way to the folder as a whole
    wrapped = f"data.val={{type: repeat, times: 3, dataset: {{type: image_folder, root: '{other}'}}}}"
    assert evaluate(trained_checkpoint, overrides=[wrapped], show_progress=False).num_samples == 18
    result = evaluate(trained_checkpoint, overrides=[wrapped], data_root=other, show_progress=False)
    assert result.num_samples == 6
    with pytest.raises(ClsctlError, match="no folder for classes"):
        evaluate(trained_checkpoint, overrides=["data.val.classes=[cat]"], show_progress=False)


def test_evaluate_rejects_folder_with_other_classes(trained_checkpoint: Path, tmp_path: Path) -> None:
    write_image_folder(tmp_path / "x", per_class=1)
    (tmp_path / "x" / "cat").mkdir()
    Path(tmp_path / "x" / "red" / "0.png").rename(tmp_path / "x" / "cat" / "0.png")
    with pytest.raises(ClsctlError, match=r"classes cat are not among the model's 3 classes \(blue, green, red\)"):
        evaluate(trained_checkpoint, data_root=tmp_path / "x", show_progress=False)


def test_a_folder_of_some_of_the_classes_is_scored_over_those(trained_checkpoint: Path, tmp_path: Path) -> None:
    full = evaluate(trained_checkpoint, show_progress=False)  # the recipe's val split: blue, green, red
    import shutil

    from clsctl.readers import read_checkpoint

    root = Path(read_checkpoint(trained_checkpoint)["recipe"]["data"]["val"]["root"])
    subset = tmp_path / "subset"
    for name in ("red", "green"):  # two of three, in another order than the model's
        shutil.copytree(root / name, subset / name)
    result = evaluate(trained_checkpoint, data_root=subset, show_progress=False)
    assert result.num_samples == 8 and result.label_map == [1, 2]  # green, red in sorted folder order
    assert result.class_names == ["green", "red"] and result.per_class["support"] == [4, 4]
    # the same images as in the full split, predicted the same way: their recall is the full run's
    assert result.per_class["recall"] == pytest.approx(full.per_class["recall"][1:])
    assert result.metrics["macro/recall"] == pytest.approx(sum(full.per_class["recall"][1:]) / 2)


def test_unreadable_images_are_left_out_of_metrics_and_predictions(trained_checkpoint: Path, tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "val", per_class=2, seed=3)
    (folder / "green" / "0.png").write_bytes(b"not a png")
    out = tmp_path / "preds.json"
    result = evaluate(trained_checkpoint, data_root=folder, out=out, show_progress=False)
    assert result.excluded == 1 and result.num_samples == 5
    assert sum(result.per_class["support"]) == 5 and result.per_class["support"][1] == 1
    data = json.loads(out.read_text())
    assert len(data["predictions"]) == 5 and len(_scores(out)) == 5
    assert data["excluded"] == [str(folder / "green" / "0.png")]
    assert all(not p["path"].endswith("green/0.png") for p in data["predictions"])



# --------------------------------------------------------------------------- a model by name, without a checkpoint

FOLDER_NAMES = {"red": "n01440764", "green": "goldfish", "blue": "Great_White_Shark"}  # WordNet id, name, lemma
FAST = ["data.loader.num_workers=0"]


@pytest.fixture()
def imagenet_folder(tmp_path: Path) -> Path:
    """``val/<class>/`` folders named by WordNet id, by ImageNet class name and by WordNet lemma."""
    root = write_image_folder(tmp_path / "imagenet" / "val", per_class=3, seed=5)
    for old, new in FOLDER_NAMES.items():
        (root / old).rename(root / new)
    return tmp_path / "imagenet"


@pytest.fixture()
def weights_1000(tmp_path: Path) -> Path:
    """A weights file of ``test_resnet`` with a 1000-class head that favours the folder's three classes."""
    import torch

    from clsctl.models import create_model

    torch.manual_seed(3)
    model = create_model("test_resnet", num_classes=1000)
    with torch.no_grad():
        model.fc.bias[:3] += torch.tensor([4.0, 4.1, 3.9])
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    return path


def _read(path: str) -> "torch.Tensor":
    """An image as torchvision.io decodes it (uint8 RGB): what a hand-written tensor pipeline starts from."""
    import warnings

    from torchvision.io import ImageReadMode, decode_image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_image(path, mode=ImageReadMode.RGB)


def _manual_logits(weights: Path, paths: list[str], transform) -> "torch.Tensor":
    """Logits of ``test_resnet`` with ``weights`` on each image, one image at a time, by torchvision alone."""
    import torch

    from clsctl.models import create_model

    model = create_model("test_resnet", num_classes=1000).eval()
    model.load_state_dict(torch.load(weights, weights_only=True))
    with torch.no_grad():
        return torch.cat([model(transform(_read(p)).unsqueeze(0)) for p in paths])


def _plain_transform(resize: int = 37):
    """torchvision's evaluation transform on uint8 tensors (antialiased resize), written out by hand."""
    import torch
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize(resize, antialias=True), v2.CenterCrop(32), v2.ToDtype(torch.float32, scale=False),
                       v2.Lambda(lambda x: x / 255), v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])


def _folder_samples(root: Path) -> tuple[list[str], list[int]]:
    """Image paths in dataset order (sorted folders, sorted files) and their ImageNet labels."""
    label = {"n01440764": 0, "goldfish": 1, "Great_White_Shark": 2}
    paths, labels = [], []
    for folder in sorted(p.name for p in root.iterdir()):
        for path in sorted((root / folder).iterdir()):
            paths.append(str(path))
            labels.append(label[folder])
    return paths, labels


def test_model_by_name_with_weights_equals_a_manual_evaluation(imagenet_folder: Path, weights_1000: Path,
                                                               tmp_path: Path) -> None:
    import torch

    out = tmp_path / "preds.json"
    result = evaluate(model="test_resnet", weights=weights_1000, num_classes=1000, data_root=imagenet_folder,
                      split="val", overrides=FAST, out=out, batch_size=4, show_progress=False)
    paths, labels = _folder_samples(imagenet_folder / "val")
    logits = _manual_logits(weights_1000, paths, _plain_transform())
    targets = torch.tensor(labels)
    preds = logits.argmax(1)
    assert result.label_map == [2, 1, 0]  # Great_White_Shark, goldfish, n01440764 in sorted folder order
    assert result.num_samples == 9 and result.tta is None and result.throughput > 0
    assert 0 < result.metrics["accuracy/top1"] < 100  # the biased head makes a real mix of right and wrong
    assert result.metrics["accuracy/top1"] == pytest.approx(100 * float((preds == targets).float().mean()))
    top5 = logits.topk(5, 1).indices.eq(targets[:, None]).any(1).float().mean()
    assert result.metrics["accuracy/top5"] == pytest.approx(100 * float(top5))
    loss = torch.nn.functional.cross_entropy(logits, targets)
    assert result.metrics["loss"] == pytest.approx(float(loss), rel=1e-5)
    precision, recall, f1, support = precision_recall_fscore_support(labels, preds.tolist(), labels=[2, 1, 0],
                                                                     zero_division=0)
    assert result.per_class["precision"] == pytest.approx(list(precision * 100))
    assert result.per_class["recall"] == pytest.approx(list(recall * 100))
    assert result.metrics["macro/f1"] == pytest.approx(float(f1.mean() * 100))
    assert result.per_class["support"] == [3, 3, 3]
    assert result.class_names == ["Great_White_Shark (great white shark)", "goldfish", "n01440764 (tench)"]
    data = json.loads(out.read_text())
    assert data["model"] == "test_resnet" and len(data["class_names"]) == 1000
    assert [p["label"] for p in data["predictions"]] == labels
    assert [p["pred"] for p in data["predictions"]] == preds.tolist()
    torch.testing.assert_close(_scores(out), logits.softmax(1), atol=1e-5, rtol=0)


def test_preprocessing_is_overridable_by_set(imagenet_folder: Path, weights_1000: Path) -> None:
    import torch

    result = evaluate(model="test_resnet", weights=weights_1000, num_classes=1000, data_root=imagenet_folder,
                      split="val", overrides=[*FAST, "data.test.pipeline.0.size=48"], show_progress=False)
    paths, labels = _folder_samples(imagenet_folder / "val")
    logits = _manual_logits(weights_1000, paths, _plain_transform(resize=48))
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(labels))
    assert result.metrics["loss"] == pytest.approx(float(loss), rel=1e-5)


def test_imagenet_meta_layout_with_numbered_labels(tmp_path: Path, imagenet_folder: Path,
                                                   weights_1000: Path) -> None:
    paths, labels = _folder_samples(imagenet_folder / "val")
    (imagenet_folder / "meta").mkdir()
    lines = [f"{Path(p).relative_to(imagenet_folder / 'val')} {label}" for p, label in zip(paths, labels)]
    (imagenet_folder / "meta" / "val.txt").write_text("\n".join(lines) + "\n")
    by_list = evaluate(model="test_resnet", weights=weights_1000, num_classes=1000, data_root=imagenet_folder,
                       overrides=FAST, show_progress=False)  # test falls back to meta/val.txt
    assert by_list.label_map == [0, 1, 2] and by_list.class_names == ["0 (tench)", "1 (goldfish)",
                                                                      "2 (great white shark)"]
    (imagenet_folder / "meta" / "val.txt").unlink()
    by_folder = evaluate(model="test_resnet", weights=weights_1000, num_classes=1000, data_root=imagenet_folder,
                         split="val", overrides=FAST, show_progress=False)
    assert by_list.metrics == by_folder.metrics


def test_unmapped_and_mismatched_classes_are_errors(tmp_path: Path, weights_1000: Path) -> None:
    folder = write_image_folder(tmp_path / "colours", per_class=1)
    with pytest.raises(ClsctlError, match=r"not in ImageNet-1k: blue, green, red"):
        evaluate(model="test_resnet", weights=weights_1000, num_classes=1000, data_root=folder, overrides=FAST,
                 show_progress=False)
    with pytest.raises(ClsctlError, match="has 10 outputs but the dataset has 3 classes"):
        evaluate(model="test_resnet", data_root=folder, overrides=FAST, show_progress=False)
    with pytest.raises(ClsctlError, match="give a checkpoint or a model name"):
        evaluate(show_progress=False)
    with pytest.raises(ClsctlError, match="--pretrained or --weights, not both"):
        evaluate(model="resnet18", pretrained=True, weights=weights_1000, data_root=folder, show_progress=False)
    with pytest.raises(ClsctlError, match="give --data-root"):
        evaluate(model="test_resnet", show_progress=False)
    # as many outputs as classes: output i is class i (e.g. weights fine-tuned on this very folder)
    assert evaluate(model="test_resnet", num_classes=3, data_root=folder, overrides=FAST,
                    show_progress=False).label_map is None


@pytest.mark.slow  # ResNet-18 at 224 px, twice, and its 45 MB stand-in file
def test_pretrained_weights_come_from_the_torch_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          imagenet_folder: Path) -> None:
    """``clsctl.evaluate(model=..., pretrained=True)`` reads the published file from torch.hub's cache (a stand-in
    put there), exactly as the same file given as ``weights`` would."""
    import torch

    import clsctl
    from clsctl.models import create_model, model_info

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = model_info("resnet18").pretrained_url
    cached = tmp_path / "torch" / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(create_model("resnet18").state_dict(), cached)
    pretrained = clsctl.evaluate(model="resnet18", pretrained=True, data_root=imagenet_folder, split="val",
                                 overrides=FAST, show_progress=False)
    local = clsctl.evaluate(model="resnet18", weights=cached, data_root=imagenet_folder, split="val", overrides=FAST,
                            show_progress=False)
    assert pretrained.metrics == local.metrics and pretrained.num_samples == 9


@pytest.mark.slow  # imports timm (several seconds)
def test_timm_model_by_name_equals_timms_own_preprocessing(tmp_path: Path, imagenet_folder: Path) -> None:
    timm = pytest.importorskip("timm")
    import torch
    from timm.data import create_transform, resolve_data_config

    torch.manual_seed(0)
    net = timm.create_model("test_resnet.r160_in1k", pretrained=False).eval()
    weights = tmp_path / "timm.pt"
    torch.save(net.state_dict(), weights)
    out = tmp_path / "timm.json"
    evaluate(model="timm/test_resnet.r160_in1k", weights=weights, data_root=imagenet_folder, split="val",
             overrides=FAST, out=out, show_progress=False)
    transform = create_transform(**resolve_data_config({}, model=net))
    paths, labels = _folder_samples(imagenet_folder / "val")
    from PIL import Image

    with torch.no_grad():
        expected = torch.cat([net(transform(Image.open(p).convert("RGB"))[None]) for p in paths]).softmax(1)
    data = json.loads(out.read_text())
    assert [p["label"] for p in data["predictions"]] == labels
    # timm resizes PIL images with Pillow, clsctl uint8 tensors with torchvision's antialiased kernels: the same
    # resize, crop and normalisation give probabilities within a few thousandths (the same classes win)
    torch.testing.assert_close(_scores(out), expected, atol=5e-3, rtol=0)
    assert _scores(out).argmax(1).tolist() == expected.argmax(1).tolist()


# --------------------------------------------------------------------------- test-time augmentation


@pytest.mark.parametrize("mode", ["flip", "five-crop", "ten-crop"])
def test_tta_is_the_mean_of_the_views_probabilities(mode: str, imagenet_folder: Path, weights_1000: Path,
                                                    tmp_path: Path) -> None:
    import torch
    from torchvision.transforms import v2

    plain_out, tta_out = tmp_path / "plain.json", tmp_path / "tta.json"
    common = dict(model="test_resnet", weights=weights_1000, num_classes=1000, data_root=imagenet_folder,
                  split="val", overrides=FAST, batch_size=4, show_progress=False)
    evaluate(out=plain_out, **common)
    result = evaluate(out=tta_out, tta=mode, **common)
    assert result.tta == mode
    normalize = v2.Compose([v2.Lambda(lambda x: x.float() / 255),
                            v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    resize = v2.Resize(37, antialias=True)
    if mode == "flip":
        views = lambda image: [v2.CenterCrop(32)(resize(image)),  # noqa: E731
                               v2.functional.horizontal_flip(v2.CenterCrop(32)(resize(image)))]
    else:
        crop = v2.FiveCrop(32) if mode == "five-crop" else v2.TenCrop(32)
        views = lambda image: list(crop(resize(image)))  # noqa: E731
    paths, labels = _folder_samples(imagenet_folder / "val")
    from clsctl.models import create_model

    model = create_model("test_resnet", num_classes=1000).eval()
    model.load_state_dict(torch.load(weights_1000, weights_only=True))
    with torch.no_grad():
        expected = torch.stack([
            torch.stack([model(normalize(v)[None])[0].softmax(0) for v in views(_read(p))]).mean(0)
            for p in paths])
    scores, plain = _scores(tta_out), _scores(plain_out)
    torch.testing.assert_close(scores, expected, atol=1e-6, rtol=0)
    # other numbers than without TTA (the N(0, 0.01) head keeps the gap small: ~5e-5, 50x the atol above)
    assert (scores - plain).abs().max() > 1e-5
    targets = torch.tensor(labels)
    assert result.metrics["loss"] == pytest.approx(float(-expected[torch.arange(9), targets].log().mean()), rel=1e-5)
    assert result.metrics["accuracy/top1"] == pytest.approx(100 * float((expected.argmax(1) == targets).float().mean()))


def test_tta_on_a_checkpoint(trained_checkpoint: Path) -> None:
    plain = evaluate(trained_checkpoint, show_progress=False)
    result = evaluate(trained_checkpoint, tta="flip", show_progress=False)
    assert result.tta == "flip" and result.num_samples == 12
    # the tiny recipe evaluates with a plain resize to 32x32: ten-crop cuts 32x32 crops of the image resized to
    # 36 (32 / 0.875), and the result is another one
    ten = evaluate(trained_checkpoint, tta="ten-crop", show_progress=False)
    assert ten.tta == "ten-crop" and ten.num_samples == 12
    assert ten.metrics["loss"] != pytest.approx(plain.metrics["loss"], rel=1e-6)
    with pytest.raises(ClsctlError, match="last image step is random_crop"):
        evaluate(trained_checkpoint, tta="five-crop", overrides=["data.val.pipeline=[{type: random_crop, size: 8}]"],
                 show_progress=False)
    with pytest.raises(ClsctlError, match="tta must be one of"):
        evaluate(trained_checkpoint, tta="mirror", show_progress=False)


# --------------------------------------------------------------------------- one path: the same numbers every way


def test_test_gives_the_val_metrics_training_logged(trained_checkpoint: Path) -> None:
    from clsctl.readers import read_checkpoint

    logged = read_checkpoint(trained_checkpoint)["metrics"]  # the val record of the epoch best.pt holds
    result = evaluate(trained_checkpoint, split="val", show_progress=False)
    assert result.metrics["accuracy/top1"] == logged["accuracy/top1"]
    assert result.metrics["loss"] == pytest.approx(logged["loss"], rel=1e-6, abs=1e-7)


def test_set_changes_the_preprocessing_or_is_refused(trained_checkpoint: Path) -> None:
    plain = evaluate(trained_checkpoint, show_progress=False)
    dark = evaluate(trained_checkpoint, overrides=["data.mean=[0,0,0]"], show_progress=False)
    assert dark.metrics["loss"] != pytest.approx(plain.metrics["loss"], rel=1e-6)
    assert "mean [0, 0, 0]" in dark.preprocessing and dark.overrides == ["data.mean=[0,0,0]"]
    small = evaluate(trained_checkpoint, overrides=["data.val.pipeline.0.size=8"], show_progress=False)
    assert "size=[8, 8]" in small.preprocessing or "size=8" in small.preprocessing
    assert small.metrics["loss"] != pytest.approx(plain.metrics["loss"], rel=1e-6)
    short = evaluate(trained_checkpoint, overrides=["preprocessing.crop_pct=0.5"], show_progress=False)
    assert "center_crop" in short.preprocessing
    with pytest.raises(ClsctlError, match=r"--set optim.lr: an evaluation changes only the preprocessing"):
        evaluate(trained_checkpoint, overrides=["optim.lr=0.5"], show_progress=False)
    with pytest.raises(ClsctlError, match=r"--set data.train.pipeline.0.size"):
        evaluate(trained_checkpoint, overrides=["data.train.pipeline.0.size=8"], show_progress=False)
    with pytest.raises(ClsctlError, match=r"preprocessing comes from data.val.pipeline"):
        evaluate(trained_checkpoint, overrides=["data.test.pipeline.0.size=8"], show_progress=False)


def test_a_checkpoint_as_weights_of_its_model_keeps_its_classes_and_preprocessing(trained_checkpoint: Path) -> None:
    from clsctl.readers import read_checkpoint

    ckpt = read_checkpoint(trained_checkpoint)
    root = ckpt["recipe"]["data"]["val"]["root"]
    direct = evaluate(trained_checkpoint, data_root=root, show_progress=False)
    named = evaluate(model=ckpt["recipe"]["model"]["name"], weights=trained_checkpoint, data_root=root,
                     show_progress=False)
    assert named.metrics == direct.metrics and named.class_names == direct.class_names
    assert named.preprocessing == direct.preprocessing
    with pytest.raises(ClsctlError, match="holds a test_resnet model, not resnet18"):
        evaluate(model="resnet18", weights=trained_checkpoint, data_root=root, show_progress=False)


def test_a_safetensors_export_is_evaluated_as_its_checkpoint(trained_checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    from clsctl.deploy.export import export_checkpoint

    exported = export_checkpoint(trained_checkpoint, "safetensors", out=tmp_path / "model.safetensors").path
    direct = evaluate(trained_checkpoint, show_progress=False)
    assert evaluate(exported, show_progress=False).metrics == direct.metrics


# --------------------------------------------------------------------------- predict (clsctl infer)


def test_expand_images_handles_files_folders_globs(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", per_class=2)
    (root / "notes.txt").write_text("not an image")
    single = root / "red" / "0.png"
    found = expand_images([str(single), str(root / "green"), str(root / "b*" / "*.png"), str(single)])
    assert found[0] == single
    assert len(found) == 1 + 2 + 2  # the repeated file counted once
    with pytest.raises(DataError, match="image not found"):
        expand_images([str(tmp_path / "missing.png")])
    with pytest.raises(DataError, match="no images match"):
        expand_images([str(tmp_path / "*.jpg")])


def test_predict_with_checkpoint(trained_checkpoint: Path, tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", per_class=2, seed=3)
    results = predict([str(root)], checkpoint=trained_checkpoint, topk=2)
    assert len(results) == 6
    for result in results:
        assert len(result.topk) == 2
        assert result.topk[0][2] >= result.topk[1][2]
        assert {name for _, name, _ in result.topk} <= {"red", "green", "blue"}
    probabilities = predict([str(root / "red" / "0.png")], checkpoint=trained_checkpoint, topk=10)[0].topk
    assert len(probabilities) == 3 and sum(p for _, _, p in probabilities) == pytest.approx(1.0, abs=1e-5)
    assert results[0].to_dict()["topk"][0].keys() == {"class", "name", "probability"}


def test_predict_with_model_name_uses_imagenet_names(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imgs", per_class=1)
    from clsctl.data.imagenet_classes import imagenet_class_names

    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench"
    results = predict([str(root / "red" / "0.png")], model="resnet18", topk=3)
    assert all(name in names for _, name, _ in results[0].topk)
    small = predict([str(root / "red" / "0.png")], model="test_resnet", num_classes=4, topk=2)
    assert {name for _, name, _ in small[0].topk} <= {"class_0", "class_1", "class_2", "class_3"}
