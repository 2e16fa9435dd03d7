"""clsctl verify-dataset."""

from pathlib import Path

from typer.testing import CliRunner

from clsctl.cli.main import app


def test_clean_split_exits_0(runner: CliRunner, tiny_recipe: Path, image_root: Path, tmp_path: Path) -> None:
    (image_root / "val" / "red" / "notes.txt").write_text("not an image, and the loader ignores it")
    log = tmp_path / "b.log"
    result = runner.invoke(app, ["verify-dataset", str(tiny_recipe), "-p", "val", "--out-path", str(log),
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "all 12 images of val decode" in result.output
    assert "not checked:" in result.output and "notes.txt" in result.output
    assert log.read_text() == ""


def test_broken_files_exit_1(runner: CliRunner, tiny_recipe: Path, image_root: Path, tmp_path: Path) -> None:
    folder = image_root / "train" / "red"
    (folder / "empty.png").write_bytes(b"")
    (folder / "fake.jpg").write_text("hello")
    log = tmp_path / "broken.log"
    result = runner.invoke(app, ["verify-dataset", str(tiny_recipe), "--phase", "train", "--num-process", "2",
                                 "--out-path", str(log), "--set", "runtime.epochs=1"])
    assert result.exit_code == 1, result.output
    assert "2 broken of 26 files" in result.output
    assert "empty file (0 bytes)" in result.output and "not an image" in result.output
    assert sorted(Path(line.split("\t")[0]).name for line in log.read_text().splitlines()) == ["empty.png", "fake.jpg"]


def test_shards_are_verified_sample_by_sample(runner: CliRunner, tmp_path: Path) -> None:
    import io
    import tarfile

    import yaml

    from helpers import tiny_recipe_dict
    from shard_helpers import write_shard_split

    shards = write_shard_split(tmp_path, "val", per_class=3, per_shard=3)
    with tarfile.open(shards[-1], "a") as tar:  # a sample whose image is junk and one without a label
        for name, data in (("zz-junk.png", b"junk"), ("zz-junk.cls", b"0"), ("zz-nolabel.png", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = tiny_recipe_dict(tmp_path, tmp_path / "run")
    data["data"]["val"] = {"type": "webdataset", "urls": [str(p) for p in shards]}
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(data))
    log = tmp_path / "broken.log"
    result = runner.invoke(app, ["verify-dataset", str(recipe), "-p", "val", "--out-path", str(log), "--no-progress",
                                 "--num-process", "1"])
    assert result.exit_code == 1, result.output
    assert "2 broken of 11 files" in result.output
    lines = log.read_text().splitlines()
    assert [line.split("\t")[0].rpartition(":")[2] for line in lines] == ["zz-junk", "zz-nolabel"]
    assert "not an image" in lines[0] and "empty image" in lines[1]
