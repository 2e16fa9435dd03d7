"""clsctl browse-dataset."""

from pathlib import Path

from typer.testing import CliRunner

from analysis_helpers import assert_picture, differ, read_png
from clsctl.cli.main import app


def test_every_flag(runner: CliRunner, tiny_recipe: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["browse-dataset", str(tiny_recipe), "-p", "val", "-o", str(out), "-n", "2",
                                 "-m", "pipeline", "-r", "3", "-c", "BGR",
                                 "--set", "data.val.pipeline=[{type: center_crop, size: 16}]"])
    assert result.exit_code == 0, result.output
    assert "2 of 12 val samples (pipeline) saved" in result.output
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == ["0000_blue.png", "0001_blue.png"]
    pipeline = assert_picture(files[0], 96 + 48, 96)  # 32x32 x3 original beside the 16x16 x3 crop
    # Blue class shown in BGR order: the red channel dominates the image panel.
    panel = pipeline[-96:, :96].astype(int)
    assert (panel[..., 0] > panel[..., 2]).mean() > 0.9
    plain = runner.invoke(app, ["browse-dataset", str(tiny_recipe), "-p", "val", "-o", str(tmp_path / "p"), "-n", "1"])
    assert plain.exit_code == 0, plain.output
    assert differ(pipeline, read_png(tmp_path / "p" / "0000_blue.png"))


def test_bad_values(runner: CliRunner, tiny_recipe: Path, tmp_path: Path) -> None:
    mode = runner.invoke(app, ["browse-dataset", str(tiny_recipe), "-m", "grid", "-o", str(tmp_path)])
    assert mode.exit_code == 2 and "Invalid value" in mode.output and "'grid'" in mode.output
    phase = runner.invoke(app, ["browse-dataset", str(tiny_recipe), "-p", "dev", "-o", str(tmp_path)])
    assert phase.exit_code == 2
    order = runner.invoke(app, ["browse-dataset", str(tiny_recipe), "-c", "GBR", "-o", str(tmp_path)])
    assert order.exit_code == 2 and "Invalid value" in order.output and "'GBR'" in order.output


def test_shards_are_browsed_from_the_first_shard(runner: CliRunner, tmp_path: Path) -> None:
    import yaml

    from helpers import tiny_recipe_dict
    from shard_helpers import write_shard_split

    shards = write_shard_split(tmp_path, "train", per_class=3, per_shard=4)
    data = tiny_recipe_dict(tmp_path, tmp_path / "run")
    data["data"]["train"]["type"] = "webdataset"
    data["data"]["train"].pop("root")
    data["data"]["train"]["urls"] = [str(p) for p in shards]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    result = runner.invoke(app, ["browse-dataset", str(recipe), "-o", str(out), "-n", "3", "-m", "concat"])
    assert result.exit_code == 0, result.output
    assert "3 of 9 train samples (concat) saved" in result.output
    files = sorted(out.glob("*.png"))
    assert len(files) == 3
    assert {f.stem.partition("_")[2] for f in files} <= {"red", "green", "blue"}
    picture = read_png(files[0]).astype(int)
    panel = picture[-32:, :32]  # the original 32x32 sample, its class colour dominant
    channel = ["red", "green", "blue"].index(files[0].stem.partition("_")[2])
    assert panel.reshape(-1, 3).mean(0).argmax() == channel
