"""clsctl reparameterize, and the deploy checkpoint in test and infer."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from clsctl.cli.main import app

from deploy_helpers import make_checkpoint
from helpers import write_image_folder


def _predictions(runner: CliRunner, checkpoint: Path, out: Path) -> list:
    result = runner.invoke(app, ["test", str(checkpoint), "--out", str(out), "--no-progress", "--split", "val"])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())["predictions"]


def test_fuse_conv_bn_on_trained_resnet_then_test_and_infer(runner: CliRunner, trained_checkpoint: Path,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "deploy.pt"
    result = runner.invoke(app, ["reparameterize", str(trained_checkpoint), str(out), "--fuse-conv-bn"])
    assert result.exit_code == 0, result.output
    assert "conv+BN pairs folded: 12" in result.output and f"wrote {out}" in result.output
    diff = float(re.search(r"max abs diff on a random 2x3x32x32 input: (\S+)", result.output).group(1))
    assert diff < 1e-4
    assert re.search(r"params\s*│\s*77\.55K\s*│\s*77\.19K", result.output)  # BatchNorm affine params folded away
    assert re.search(r"FLOPs\s*│\s*\S+M\s*│\s*\S+M", result.output)
    # test and infer load the deploy checkpoint directly and predict what the original does.
    before = _predictions(runner, trained_checkpoint, tmp_path / "before.json")
    after = _predictions(runner, out, tmp_path / "after.json")
    assert [p["pred"] for p in before] == [p["pred"] for p in after]
    image = write_image_folder(tmp_path / "imgs", per_class=1) / "red" / "0.png"
    infer = [runner.invoke(app, ["infer", str(image), "-c", str(path), "--json", "-k", "3"])
             for path in (trained_checkpoint, out)]
    assert all(r.exit_code == 0 for r in infer), infer[1].output
    scores = [json.loads(r.output)[0]["topk"] for r in infer]
    assert [row["class"] for row in scores[0]] == [row["class"] for row in scores[1]]
    assert abs(scores[0][0]["probability"] - scores[1][0]["probability"]) < 1e-4


def test_repvgg_checkpoint(runner: CliRunner, tmp_path: Path) -> None:
    source = make_checkpoint(tmp_path, "test_repvgg")
    write_image_folder(tmp_path / "data" / "val", per_class=2, seed=5)  # the recipe's val split
    out = tmp_path / "repvgg_deploy.pt"
    result = runner.invoke(app, ["reparameterize", str(source), str(out)])
    assert result.exit_code == 0, result.output
    assert "re-parameterized blocks: 8; conv+BN pairs folded: 0" in result.output
    assert re.search(r"params\s*│\s*40\.64K\s*│\s*36\.02K", result.output)
    before = _predictions(runner, source, tmp_path / "before.json")
    after = _predictions(runner, out, tmp_path / "after.json")
    assert [p["pred"] for p in before] == [p["pred"] for p in after] and len(after) == 6


def test_errors(runner: CliRunner, tmp_path: Path) -> None:
    source = make_checkpoint(tmp_path, "test_resnet")
    nothing = runner.invoke(app, ["reparameterize", str(source), str(tmp_path / "o.pt")])
    assert nothing.exit_code == 2 and "nothing to convert" in nothing.output and "--fuse-conv-bn" in nothing.output
    missing = runner.invoke(app, ["reparameterize", str(tmp_path / "nope.pt"), str(tmp_path / "o.pt")])
    assert missing.exit_code == 2 and "checkpoint not found" in missing.output
    assert "Traceback" not in nothing.output + missing.output
