"""runtime.loggers: MLflow and W&B runs read back from their own files after a tiny training run."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from clsctl.engine.runlog import read_metrics
from clsctl.engine.trackers import flatten, scalars
from clsctl.errors import ClsctlError
from clsctl.recipe import validate_recipe

from helpers import tiny_recipe_dict


def _train(image_root: Path, run_dir: Path, loggers: list[str], **runtime: object):
    from clsctl.engine.loop import train

    recipe = validate_recipe(tiny_recipe_dict(image_root, run_dir, loggers=loggers, **runtime))
    return train(recipe, show_progress=False)


def test_flatten_and_scalars() -> None:
    data = {"model": {"name": "x", "kwargs": {}}, "data": {"pipeline": [{"type": "resize", "size": [3, 4]}]},
            "w": None, "flag": True}
    assert dict(flatten(data)) == {"model.name": "x", "model.kwargs": "{}", "data.pipeline.0.type": "resize",
                                   "data.pipeline.0.size.0": "3", "data.pipeline.0.size.1": "4", "w": "null",
                                   "flag": "true"}
    assert scalars({"mode": "val", "epoch": 1, "step": 4, "accuracy/top1": 50.0, "ok": True}) == {
        "val/accuracy/top1": 50.0}


def test_jsonl_is_always_on() -> None:
    recipe = validate_recipe(tiny_recipe_dict(Path("d"), Path("r"), loggers=["mlflow"]))
    assert recipe.runtime.loggers == ["mlflow"]  # metrics.jsonl is written whatever the list says


@pytest.mark.slow
def test_mlflow_store_holds_params_metrics_and_artifacts(image_root: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "store").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run_dir = tmp_path / "run"
    (run_dir / "plots").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (4, 4)).save(run_dir / "plots" / "curve.png")
    _train(image_root, run_dir, ["jsonl", "mlflow"], experiment="tiny-exp")

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("tiny-exp")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["model.name"] == "test_resnet" and run.data.params["optim.lr"] == "0.05"
    assert run.data.params["data.train.pipeline.0.type"] == "random_crop"
    records = read_metrics(run_dir / "metrics.jsonl")
    train_records = [r for r in records if r["mode"] == "train"]
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(r["step"], r["loss"]) for r in train_records]
    val = [r for r in records if r["mode"] == "val"]
    top1 = client.get_metric_history(run.info.run_id, "val/accuracy/top1")
    assert [(m.step, m.value) for m in top1] == [(r["step"], r["accuracy/top1"]) for r in val] and len(val) == 2
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"best.pt", "recipe.yaml", "plots"} <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "plots/plots")] == ["plots/plots/curve.png"]
    assert json.loads((run_dir / "trackers.json").read_text())["mlflow"] == run.info.run_id


@pytest.mark.slow
def test_mlflow_default_is_a_local_file_store(image_root: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    _train(image_root, tmp_path / "run", ["mlflow"], epochs=1)
    assert list((tmp_path / "mlruns").glob("*/*/metrics/train/loss"))


def test_missing_tracker_package_names_the_extra(image_root: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now fails as if it were not installed
    with pytest.raises(ClsctlError, match=r"pip install 'clsctl\[mlflow\]'"):
        _train(image_root, tmp_path / "run", ["mlflow"], epochs=1)
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ClsctlError, match=r"pip install 'clsctl\[wandb\]'"):
        _train(image_root, tmp_path / "run2", ["wandb"], epochs=1)


def read_wandb_records(path: Path) -> list[object]:
    """The protobuf records of a ``.wandb`` file (LevelDB log format: 32 KiB blocks of CRC, length, type
    chunks after a 7-byte ``:W&B`` header)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, position, records, pending = 32768, 7, [], b""
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # too little room for a chunk header: the rest of the block is padding
            position += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position:position + 7])
        position += 7
        if kind == 0 and length == 0:
            position += left - 7
            continue
        chunk, position = data[position:position + length], position + length
        if kind == 1:  # full
            records.append(chunk)
        elif kind == 2:  # first
            pending = chunk
        elif kind == 3:  # middle
            pending += chunk
        elif kind == 4:  # last
            records.append(pending + chunk)
    parsed = []
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        parsed.append(record)
    return parsed


@pytest.mark.slow
def test_wandb_runs_offline_unless_logged_in(image_root: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: not logged in
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    run_dir = tmp_path / "run"
    _train(image_root, run_dir, ["wandb"], experiment="tiny-project")

    (run_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    records = read_wandb_records(run_file)
    # complete when train() returns: the run's exit record is written (W&B finishes asynchronously)
    assert [r.exit.exit_code for r in records if r.WhichOneof("record_type") == "exit"] == [0]
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.project == "tiny-project" and run.display_name == "run"
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["model"]["name"] == "test_resnet" and config["optim"]["lr"] == 0.05
    history = [{item.nested_key[0] if item.nested_key else item.key: json.loads(item.value_json)
                for item in r.history.item} for r in records if r.WhichOneof("record_type") == "history"]
    logged = {(h["_step"], h["train/loss"]) for h in history if "train/loss" in h}
    jsonl = read_metrics(run_dir / "metrics.jsonl")
    assert logged == {(r["step"], r["loss"]) for r in jsonl if r["mode"] == "train"}
    top1 = [h["val/accuracy/top1"] for h in history if "val/accuracy/top1" in h]
    assert top1 == [r["accuracy/top1"] for r in jsonl if r["mode"] == "val"]
    assert json.loads((run_dir / "trackers.json").read_text())["wandb"] == run.run_id
