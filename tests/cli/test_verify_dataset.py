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
