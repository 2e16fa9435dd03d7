"""Multi-label end to end: a VOC-layout dataset, BCE loss and multi-label head, mAP validation, test, infer."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clsctl.data.layouts import VOC_CLASSES
from clsctl.engine.loop import train
from clsctl.engine.evaluate import predict
from clsctl.engine.evaluate import evaluate
from clsctl.recipe import validate_recipe

from helpers import tiny_recipe_dict


def write_voc(root: Path, count: int = 12) -> Path:
    """A VOC2007 tree whose images hold 'cat' (red) and/or 'dog' (blue) colour patches."""
    rng = np.random.default_rng(0)
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    ids = []
    for index in range(count):
        image_id = f"{index:06d}"
        ids.append(image_id)
        pixels = rng.integers(0, 60, size=(32, 32, 3)).astype(np.uint8)
        names = [["cat"], ["dog"], ["cat", "dog"]][index % 3]
        if "cat" in names:
            pixels[:, :16, 0] = 230
        if "dog" in names:
            pixels[:, 16:, 2] = 230
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{image_id}.jpg")
        objects = "".join(f"<object><name>{n}</name><difficult>0</difficult></object>" for n in names)
        (root / "Annotations" / f"{image_id}.xml").write_text(f"<annotation>{objects}</annotation>")
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("\n".join(ids) + "\n")
    return root


@pytest.mark.parametrize("loss", ["bce", "asymmetric"])
def test_multi_label_training_validates_with_map(tmp_path: Path, loss: str) -> None:
    voc = write_voc(tmp_path / "VOC2007")
    data = tiny_recipe_dict(tmp_path, tmp_path / "run", epochs=2)
    data["data"]["train"] = {"type": "voc2007", "root": str(voc)}
    data["data"]["val"] = {"type": "voc2007", "root": str(voc)}
    data["model"]["head"] = {"type": "multi_label_linear"}
    data["loss"] = {"type": loss}
    result = train(validate_recipe(data), show_progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["mode"] == "val"]
    assert len(val) == 2 and 0 <= val[-1]["multi-label/mAP"] <= 100 and "accuracy/top1" not in val[-1]
    assert result.best_metric == max(r["multi-label/mAP"] for r in val)

    out = tmp_path / "preds.json"
    report = evaluate(result.best_checkpoint, out=out, show_progress=False)
    assert report.metrics["multi-label/mAP"] == pytest.approx(result.best_metric)
    entries = json.loads(out.read_text())["predictions"]
    cat, dog = VOC_CLASSES.index("cat"), VOC_CLASSES.index("dog")
    assert [sorted(e["labels"]) for e in entries[:3]] == [[cat], [dog], sorted([cat, dog])]
    assert all(set(e["pred_labels"]) <= set(range(20)) for e in entries)

    scores = predict([str(voc / "JPEGImages" / "000002.jpg")], checkpoint=result.best_checkpoint, topk=20)[0]
    # Independent sigmoid scores: they need not sum to one (a softmax would make them).
    assert sum(p for _, _, p in scores.topk) != pytest.approx(1.0, abs=1e-3)
