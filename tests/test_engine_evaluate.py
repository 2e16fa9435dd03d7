"""evaluate(): metrics, per-class numbers, predictions file, other data roots."""

import json
from pathlib import Path

import pytest
from PIL import Image
from sklearn.metrics import precision_recall_fscore_support

from clsctl.engine.evaluate import evaluate
from clsctl.errors import ClsctlError

from helpers import write_image_folder


def test_evaluate_checkpoint_on_its_val_split(trained_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.json"
    result = evaluate(trained_checkpoint, out=out, show_progress=False)
    assert result.num_samples == 12 and result.class_names == ["blue", "green", "red"]
    assert 0 <= result.metrics["accuracy/top1"] <= 100 and result.metrics["accuracy/top5"] == 100.0
    data = json.loads(out.read_text())
    predictions = data["predictions"]
    assert len(predictions) == 12 and len(data["scores"]) == 12
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
    assert first["topk"][0]["score"] >= first["topk"][1]["score"]


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
    (tmp_path / "x" / "cat").mkdir(parents=True)
    write_image_folder(tmp_path / "x", per_class=1)
    with pytest.raises(ClsctlError, match="differ from the checkpoint"):
        evaluate(trained_checkpoint, data_root=tmp_path / "x", show_progress=False)


def test_unreadable_images_are_left_out_of_metrics_and_predictions(trained_checkpoint: Path, tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "val", per_class=2, seed=3)
    (folder / "green" / "0.png").write_bytes(b"not a png")
    out = tmp_path / "preds.json"
    result = evaluate(trained_checkpoint, data_root=folder, out=out, show_progress=False)
    assert result.excluded == 1 and result.num_samples == 5
    assert sum(result.per_class["support"]) == 5 and result.per_class["support"][1] == 1
    data = json.loads(out.read_text())
    assert len(data["predictions"]) == 5 and len(data["scores"]) == 5
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


def _manual_logits(weights: Path, paths: list[str], transform) -> "torch.Tensor":
    """Logits of ``test_resnet`` with ``weights`` on each image, one image at a time, by torchvision alone."""
    import torch

    from clsctl.models import create_model

    model = create_model("test_resnet", num_classes=1000).eval()
    model.load_state_dict(torch.load(weights, weights_only=True))
    with torch.no_grad():
        return torch.cat([model(transform(Image.open(p).convert("RGB")).unsqueeze(0)) for p in paths])


def _plain_transform(resize: int = 37):
    from torchvision import transforms as T

    return T.Compose([T.Resize(resize), T.CenterCrop(32), T.ToTensor(),
                      T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])


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
    torch.testing.assert_close(torch.tensor(data["scores"]), logits.softmax(1), atol=1e-5, rtol=0)


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
    with torch.no_grad():
        expected = torch.cat([net(transform(Image.open(p).convert("RGB"))[None]) for p in paths]).softmax(1)
    data = json.loads(out.read_text())
    assert [p["label"] for p in data["predictions"]] == labels
    torch.testing.assert_close(torch.tensor(data["scores"]), expected, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- test-time augmentation


@pytest.mark.parametrize("mode", ["flip", "five-crop", "ten-crop"])
def test_tta_is_the_mean_of_the_views_probabilities(mode: str, imagenet_folder: Path, weights_1000: Path,
                                                    tmp_path: Path) -> None:
    import torch
    from torchvision import transforms as T

    plain_out, tta_out = tmp_path / "plain.json", tmp_path / "tta.json"
    common = dict(model="test_resnet", weights=weights_1000, num_classes=1000, data_root=imagenet_folder,
                  split="val", overrides=FAST, batch_size=4, show_progress=False)
    evaluate(out=plain_out, **common)
    result = evaluate(out=tta_out, tta=mode, **common)
    assert result.tta == mode
    normalize = T.Compose([T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    if mode == "flip":
        views = lambda image: [T.CenterCrop(32)(T.Resize(37)(image)),  # noqa: E731
                               T.functional.hflip(T.CenterCrop(32)(T.Resize(37)(image)))]
    else:
        crop = T.FiveCrop(32) if mode == "five-crop" else T.TenCrop(32)
        views = lambda image: list(crop(T.Resize(37)(image)))  # noqa: E731
    paths, labels = _folder_samples(imagenet_folder / "val")
    from clsctl.models import create_model

    model = create_model("test_resnet", num_classes=1000).eval()
    model.load_state_dict(torch.load(weights_1000, weights_only=True))
    with torch.no_grad():
        expected = torch.stack([
            torch.stack([model(normalize(v)[None])[0].softmax(0) for v in views(Image.open(p).convert("RGB"))]).mean(0)
            for p in paths])
    scores = torch.tensor(json.loads(tta_out.read_text())["scores"])
    plain = torch.tensor(json.loads(plain_out.read_text())["scores"])
    torch.testing.assert_close(scores, expected, atol=1e-6, rtol=0)
    # other numbers than without TTA (the N(0, 0.01) head keeps the gap small: ~5e-5, 50x the atol above)
    assert (scores - plain).abs().max() > 1e-5
    targets = torch.tensor(labels)
    assert result.metrics["loss"] == pytest.approx(float(-expected[torch.arange(9), targets].log().mean()), rel=1e-5)
    assert result.metrics["accuracy/top1"] == pytest.approx(100 * float((expected.argmax(1) == targets).float().mean()))


def test_tta_on_a_checkpoint(trained_checkpoint: Path) -> None:
    result = evaluate(trained_checkpoint, tta="flip", show_progress=False)
    assert result.tta == "flip" and result.num_samples == 12
    # the tiny recipe evaluates with a plain resize: there is no centre crop to cut five crops from
    with pytest.raises(ClsctlError, match="replaces the evaluation pipeline's final center_crop"):
        evaluate(trained_checkpoint, tta="five-crop", show_progress=False)
    with pytest.raises(ClsctlError, match="tta must be one of"):
        evaluate(trained_checkpoint, tta="mirror", show_progress=False)
