"""Every command that reads a file, given every kind of bad file: exit 2, one line naming the file, no traceback.

The matrix is (command slot) x (bad file). A slot is one place a command reads a file of one kind (recipe,
checkpoint, weights, JSON, metrics log, image); the bad files are a missing path, a folder, an empty file,
binary garbage, a file of the wrong kind, a plain state dict and a pickle whose payload would create a marker
file (a safe load must refuse it: the marker never appears).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clsctl.cli.main import app
from helpers import tiny_recipe_dict, write_train_val

CASES = ("missing", "folder", "empty", "binary", "wrong_kind", "state_dict", "pickle")


class Payload:
    """Unpickling this opens (creates) the marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (builtins.open, (self.marker, "w"))


@dataclass
class World:
    """Valid inputs the slots need besides the bad file."""

    root: Path
    recipe: Path
    image: Path
    weights: Path
    predictions: Path
    marker: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    import torch

    from clsctl.models import create_model

    root = tmp_path_factory.mktemp("hostile")
    data = root / "data"
    write_train_val(data, train_per_class=2, val_per_class=1)
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe_dict(data, root / "run")), encoding="utf-8")
    weights = root / "weights.pt"
    torch.save(create_model("test_resnet", num_classes=3).state_dict(), weights)
    image = data / "val" / "red" / "0.png"
    predictions = root / "preds.json"
    predictions.write_text(json.dumps({"class_names": ["red", "green", "blue"], "predictions": [
        {"path": str(image), "label": 0, "pred": 0, "score": 0.9, "scores": [0.9, 0.05, 0.05]}]}), encoding="utf-8")
    return World(root, recipe, image, weights, predictions, root / "PAYLOAD_RAN")


# (slot id, reader kind, file suffix, argv with "{}" where the bad file goes)
SLOTS: list[tuple[str, str, str, Callable[[World, str], list[str]]]] = [
    ("train", "recipe", ".yaml", lambda w, p: ["train", p, "--no-progress"]),
    ("print-config", "recipe", ".yaml", lambda w, p: ["print-config", p]),
    ("vis-scheduler", "recipe", ".yaml", lambda w, p: ["vis-scheduler", p, "-o", str(w.root / "s.png")]),
    ("browse-dataset", "recipe", ".yaml", lambda w, p: ["browse-dataset", p, "-o", str(w.root / "browse")]),
    ("verify-dataset", "recipe", ".yaml", lambda w, p: ["verify-dataset", p, "--no-progress"]),
    ("dataset-doctor", "recipe", ".yaml", lambda w, p: ["dataset-doctor", p, "-o", str(w.root / "doctor")]),
    ("get-flops:recipe", "recipe", ".yaml", lambda w, p: ["get-flops", p]),
    ("benchmark:recipe", "recipe", ".yaml", lambda w, p: ["benchmark", p, "--iters", "1", "--warmup", "0"]),
    ("analyze-results:source", "recipe", ".yaml",
     lambda w, p: ["analyze-results", p, str(w.predictions), "-o", str(w.root / "results")]),
    ("test", "checkpoint", ".pt", lambda w, p: ["test", p, "--no-progress"]),
    ("export", "checkpoint", ".pt", lambda w, p: ["export", p, "--no-check", "-o", str(w.root / "m.onnx")]),
    ("reparameterize", "checkpoint", ".pt", lambda w, p: ["reparameterize", p, str(w.root / "deploy.pt")]),
    ("infer:checkpoint", "checkpoint", ".pt", lambda w, p: ["infer", str(w.image), "-c", p]),
    ("cam:checkpoint", "checkpoint", ".pt", lambda w, p: ["cam", str(w.image), "-c", p]),
    ("get-flops:checkpoint", "checkpoint", ".pt", lambda w, p: ["get-flops", p]),
    ("benchmark:checkpoint", "checkpoint", ".pt", lambda w, p: ["benchmark", p, "--iters", "1", "--warmup", "0"]),
    ("analyze-results:checkpoint", "checkpoint", ".pt",
     lambda w, p: ["analyze-results", p, str(w.predictions), "-o", str(w.root / "results")]),
    ("report", "checkpoint", ".pt",
     lambda w, p: ["report", p, "-o", str(w.root / "report"), "--bench-iters", "0", "--no-progress"]),
    ("dataset-doctor:checkpoint", "checkpoint", ".pt",
     lambda w, p: ["dataset-doctor", str(w.recipe), "-c", p, "-o", str(w.root / "doctor"), "--no-progress",
                   "--num-process", "1"]),
    ("train:resume-from", "checkpoint", ".pt",
     lambda w, p: ["train", str(w.recipe), "--resume-from", p, "--no-progress"]),
    ("infer:weights", "weights", ".pth", lambda w, p: ["infer", str(w.image), "-m", "test_resnet", "--weights", p]),
    ("cam:weights", "weights", ".pth", lambda w, p: ["cam", str(w.image), "-m", "test_resnet", "--weights", p]),
    ("train:load-from", "weights", ".pth",
     lambda w, p: ["train", str(w.recipe), "--load-from", p, "--no-progress"]),
    ("eval-metric", "json", ".json", lambda w, p: ["eval-metric", p]),
    ("confusion-matrix", "json", ".json", lambda w, p: ["confusion-matrix", p, "-o", str(w.root / "cm.png")]),
    ("analyze-results:predictions", "json", ".json",
     lambda w, p: ["analyze-results", str(w.recipe), p, "-o", str(w.root / "results")]),
    ("plot-curve", "log", ".jsonl", lambda w, p: ["analyze-logs", "plot-curve", p, "-o", str(w.root / "c.png")]),
    ("cal-train-time", "log", ".jsonl", lambda w, p: ["analyze-logs", "cal-train-time", p]),
    ("infer:image", "image", ".png", lambda w, p: ["infer", p, "-m", "test_resnet", "--weights", str(w.weights)]),
    ("cam:image", "image", ".png", lambda w, p: ["cam", p, "-m", "test_resnet", "--weights", str(w.weights),
                                                 "-o", str(w.root / "cam.png")]),
]

# What the one line must say, per case (and per reader kind where it differs); the file name is always checked.
EXPECTED = {
    "missing": "not found", "folder": "folder", "empty": "empty",
    ("recipe", "binary"): "not UTF-8", ("json", "binary"): "not UTF-8", ("log", "binary"): "not UTF-8",
    ("checkpoint", "binary"): "not a PyTorch file", ("weights", "binary"): "not a PyTorch file",
    ("image", "binary"): "not an image",
    ("recipe", "wrong_kind"): "not UTF-8", ("json", "wrong_kind"): "not a predictions file",
    ("log", "wrong_kind"): "not a metrics log", ("checkpoint", "wrong_kind"): "not a PyTorch file",
    ("weights", "wrong_kind"): "not a PyTorch file", ("image", "wrong_kind"): "not an image",
    ("recipe", "state_dict"): "not UTF-8", ("json", "state_dict"): "not UTF-8", ("log", "state_dict"): "not UTF-8",
    ("checkpoint", "state_dict"): "plain state dict", ("weights", "state_dict"): "do not fit",
    ("image", "state_dict"): "not an image",
    ("recipe", "pickle"): "not UTF-8", ("json", "pickle"): "not UTF-8", ("log", "pickle"): "not UTF-8",
    ("checkpoint", "pickle"): "refused", ("weights", "pickle"): "refused", ("image", "pickle"): "not an image",
}


def make_bad_file(case: str, kind: str, suffix: str, folder: Path, world: World) -> Path:
    """The bad file of ``case`` for a slot reading ``kind``, named ``<case><suffix>`` inside ``folder``."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case}{suffix}"
    if case == "folder":
        path.mkdir()
        (path / "readme.txt").write_text("a folder, not a file", encoding="utf-8")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "binary":
        path.write_bytes(bytes(range(255, -1, -1)) * 8)
    elif case == "wrong_kind":
        if kind == "recipe":
            path.write_bytes(world.image.read_bytes())  # an image where a recipe goes
        elif kind == "json":
            path.write_text("[1, 2, 3]", encoding="utf-8")
        elif kind == "log":
            path.write_text(json.dumps([{"mode": "train", "loss": 1.0}]), encoding="utf-8")  # a JSON list
        else:  # a recipe where a checkpoint, weights or an image goes
            path.write_bytes(world.recipe.read_bytes())
    elif case == "state_dict":
        torch.save({"stem.weight": torch.zeros(2, 3), "fc.bias": torch.zeros(7)}, path)
    elif case == "pickle":
        torch.save(Payload(world.marker), path)
    return path


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("slot, kind, suffix, argv", SLOTS, ids=[slot[0] for slot in SLOTS])
def test_bad_file(runner: CliRunner, world: World, tmp_path: Path, slot: str, kind: str, suffix: str,
                  argv: Callable[[World, str], list[str]], case: str) -> None:
    path = make_bad_file(case, kind, suffix, tmp_path, world)
    result = runner.invoke(app, argv(world, str(path)))
    output = result.output
    assert not world.marker.exists(), "the pickle payload ran"
    assert "Traceback" not in output
    assert isinstance(result.exception, SystemExit) or result.exception is None, repr(result.exception)
    assert result.exit_code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert output.rstrip().splitlines()[-1] == errors[0], f"more than one line:\n{output}"
    assert path.name in errors[0], errors[0]
    expected = EXPECTED.get((kind, case), EXPECTED.get(case))
    if expected is not None:
        assert expected.lower() in errors[0].lower(), errors[0]
