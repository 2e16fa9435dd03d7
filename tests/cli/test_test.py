"""clsctl test."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clsctl.cli.main import app


def test_test_prints_tables_and_writes_predictions(runner: CliRunner, trained_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.json"
    result = runner.invoke(app, ["test", str(trained_checkpoint), "--out", str(out), "--no-progress", "-b", "4"])
    assert result.exit_code == 0, result.output
    for word in ("accuracy/top1", "accuracy/top5", "macro/f1", "per class", "precision", "recall", "red", "samples"):
        assert word in result.output
    assert len(json.loads(out.read_text())["predictions"]) == 12


def test_test_split_and_data_root(runner: CliRunner, trained_checkpoint: Path, tmp_path: Path) -> None:
    from helpers import write_image_folder

    root = write_image_folder(tmp_path / "more", per_class=1)
    result = runner.invoke(app, ["test", str(trained_checkpoint), "--data-root", str(root), "--no-per-class",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "per class" not in result.output
    assert re.search(r"samples\s*│\s*3\s*│", result.output)
    assert runner.invoke(app, ["test", str(trained_checkpoint), "--split", "train", "--no-progress"]).exit_code == 0
    bad = runner.invoke(app, ["test", str(trained_checkpoint), "--split", "dev"])
    assert bad.exit_code == 2
    (root / "red" / "0.png").write_bytes(b"truncated")
    broken = runner.invoke(app, ["test", str(trained_checkpoint), "--data-root", str(root), "--no-per-class",
                                 "--no-progress"])
    assert broken.exit_code == 0, broken.output
    assert "1 unreadable image(s) left out of the metrics" in broken.output
    assert re.search(r"samples\s*│\s*2\s*│", broken.output)


def test_not_a_checkpoint(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(b"\x00\x01garbage")
    result = runner.invoke(app, ["test", str(path)])
    assert result.exit_code == 2 and "is not a clsctl checkpoint" in result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- a model by name, TTA, several processes


def _imagenet_folder(root: Path) -> Path:
    from helpers import write_image_folder

    write_image_folder(root / "val", per_class=3, seed=5)  # 9 images: batches of 4 split unevenly over 2 processes
    for old, new in {"red": "n01440764", "green": "goldfish", "blue": "Great_White_Shark"}.items():
        (root / "val" / old).rename(root / "val" / new)
    return root


def _weights_1000(path: Path) -> Path:
    import torch

    from clsctl.models import create_model

    torch.manual_seed(3)
    model = create_model("test_resnet", num_classes=1000)
    with torch.no_grad():
        model.fc.bias[:3] += torch.tensor([4.0, 4.1, 3.9])
    torch.save(model.state_dict(), path)
    return path


def _by_name(root: Path, weights: Path, *extra: str) -> list[str]:
    return ["test", "--model", "test_resnet", "--weights", str(weights), "--num-classes", "1000", "--data-root",
            str(root), "--split", "val", "-b", "4", "-s", "data.loader.num_workers=0", "--no-progress", *extra]


def _rows(output: str) -> dict[str, str]:
    return dict(re.findall(r"│ ([\w/ ()]+?)\s+│\s+(.+?) │", output))


def test_model_by_name_with_tta_shows_tta_throughput_and_mapped_classes(runner: CliRunner, tmp_path: Path) -> None:
    root, weights = _imagenet_folder(tmp_path / "imagenet"), _weights_1000(tmp_path / "w.pt")
    result = runner.invoke(app, _by_name(root, weights, "--tta", "flip"))
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert rows["tta"] == "flip (mean of probabilities)" and rows["samples"] == "9" and rows["processes"] == "1"
    assert float(rows["throughput (img/s)"]) > 0
    assert "n01440764 (tench)" in result.output and "Great_White_Shark (great white shark)" in result.output
    plain = runner.invoke(app, _by_name(root, weights))
    assert _rows(plain.output)["tta"] == "none" and _rows(plain.output)["loss"] != rows["loss"]


def test_model_by_name_user_errors(runner: CliRunner, tmp_path: Path) -> None:
    from helpers import write_image_folder

    weights = _weights_1000(tmp_path / "w.pt")
    colours = write_image_folder(tmp_path / "colours", per_class=1)
    unmapped = runner.invoke(app, _by_name(colours, weights))
    assert unmapped.exit_code == 2 and "not in ImageNet-1k: blue, green, red" in unmapped.output
    assert "Traceback" not in unmapped.output
    neither = runner.invoke(app, ["test", "--data-root", str(colours)])
    assert neither.exit_code == 2 and "give a checkpoint or a model name" in neither.output
    no_gpu = runner.invoke(app, _by_name(colours, weights, "--gpus", "2"))
    if not __import__("torch").cuda.is_available():
        assert no_gpu.exit_code == 2 and "give --device cpu" in no_gpu.output
    bad_tta = runner.invoke(app, _by_name(colours, weights, "--tta", "mirror"))
    assert bad_tta.exit_code == 2


@pytest.mark.slow  # two spawned workers importing torch: about 15 s
def test_two_gloo_workers_equal_one_process_bit_for_bit(runner: CliRunner, tmp_path: Path) -> None:
    root, weights = _imagenet_folder(tmp_path / "imagenet"), _weights_1000(tmp_path / "w.pt")
    two, one = tmp_path / "two" / "preds.json", tmp_path / "one" / "preds.json"
    split = runner.invoke(app, _by_name(root, weights, "--gpus", "2", "--device", "cpu", "-o", str(two)))
    assert split.exit_code == 0, split.output
    single = runner.invoke(app, _by_name(root, weights, "--device", "cpu", "-o", str(one)))
    assert single.exit_code == 0, single.output
    assert two.read_bytes() == one.read_bytes()  # metrics and predictions, bit for bit
    scores = two.with_name("preds.scores.npy")
    assert scores.read_bytes() == one.with_name("preds.scores.npy").read_bytes()  # and every score
    data = json.loads(two.read_text())
    assert len(data["predictions"]) == 9 and len({p["path"] for p in data["predictions"]}) == 9  # each image once
    rows_two, rows_one = _rows(split.output), _rows(single.output)
    assert (rows_two["processes"], rows_one["processes"]) == ("2", "1")
    for key in ("accuracy/top1", "accuracy/top5", "loss", "macro/f1", "samples"):
        assert rows_two[key] == rows_one[key], key


@pytest.mark.slow  # two Python processes importing torch
def test_processes_started_like_srun_test_as_one_run(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from clsctl.engine.distributed import _free_port

    root, weights = _imagenet_folder(tmp_path / "imagenet"), _weights_1000(tmp_path / "w.pt")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update({"SLURM_NTASKS": "2", "SLURM_STEP_ID": "0", "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(_free_port()), "OMP_NUM_THREADS": "1", "COLUMNS": "150",
                "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    command = [sys.executable, "-m", "clsctl", *_by_name(root, weights, "--device", "cpu", "--no-per-class")]
    procs = [subprocess.Popen(command, env={**env, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert _rows(outputs[0])["processes"] == "2" and _rows(outputs[0])["samples"] == "9"
    assert outputs[1].strip() == ""  # rank 1 reports nothing
