"""clsctl prepare-data."""

from pathlib import Path

from typer.testing import CliRunner

from clsctl.cli.main import app


def test_prepare_digits(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare-data", "digits", str(tmp_path / "d"), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "10 classes; train: 1437, val: 360 images" in result.output
    assert len(list((tmp_path / "d" / "train").rglob("*.png"))) == 1437


def test_unknown_dataset(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare-data", "cifar11", str(tmp_path)])
    assert result.exit_code == 2 and "did you mean 'cifar10'" in result.output


def test_prepare_shards_from_an_image_folder(runner: CliRunner, tmp_path: Path) -> None:
    import json
    import tarfile

    from helpers import write_image_folder

    write_image_folder(tmp_path / "img", per_class=5)
    names = tmp_path / "names.txt"
    names.write_text("red\ngreen\nblue\n")  # another order than the sorted folders: labels follow the file
    result = runner.invoke(app, ["prepare-data", "shards", str(tmp_path / "img"), str(tmp_path / "sh"),
                                 "--shard-size", "12kB", "--classes", str(names), "--seed", "2"])
    assert result.exit_code == 0, result.output
    shards = sorted((tmp_path / "sh").glob("shard-*.tar"))
    assert f"wrote {len(shards)} shard(s), 15 samples of 3 classes" in result.output and len(shards) > 1
    assert f"urls: {tmp_path / 'sh'}/shard-{{000000..{len(shards) - 1:06d}}}.tar" in result.output.replace("\n", "")
    assert (tmp_path / "sh" / "classes.txt").read_text().split() == ["red", "green", "blue"]
    assert json.loads((tmp_path / "sh" / "index.json").read_text())["samples"] == 15
    with tarfile.open(shards[0]) as tar:
        label = int(tar.extractfile(tar.getnames()[1]).read())
        image = tar.extractfile(tar.getnames()[0]).read()
    from io import BytesIO

    import numpy as np
    from PIL import Image

    dominant = int(np.asarray(Image.open(BytesIO(image))).reshape(-1, 3).mean(0).argmax())  # R, G or B
    assert label == dominant  # red=0, green=1, blue=2 as the class file says


def test_prepare_shards_errors(runner: CliRunner, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["prepare-data", "shards", str(tmp_path)])
    assert missing.exit_code == 2 and "OUT_DIR" in missing.output
    size = runner.invoke(app, ["prepare-data", "shards", str(tmp_path), str(tmp_path / "o"), "--shard-size", "big"])
    assert size.exit_code == 2 and "'big' is not a size" in size.output
    extra = runner.invoke(app, ["prepare-data", "digits", str(tmp_path), str(tmp_path / "o")])
    assert extra.exit_code == 2 and "goes with 'shards' only" in extra.output
