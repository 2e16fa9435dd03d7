"""clsctl dataset-doctor, and its page in a real browser (headless Chromium)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis_helpers import assert_picture
from browser import open_page, require_browser
from clsctl.cli.main import app
from doctor_helpers import clean_dataset, plant_problems

PAGE_COUNTS = """() => {
  const counts = {};
  document.querySelectorAll('#counts td[data-count]').forEach(td => { counts[td.dataset.count] = Number(td.textContent); });
  return {counts, verdict: document.querySelector('[data-verdict]').dataset.verdict,
          leakRows: document.querySelectorAll('#leaks tbody tr').length};
}"""


def test_planted_problems_exit_1(runner: CliRunner, tmp_path: Path) -> None:
    recipe = clean_dataset(tmp_path)
    planted = plant_problems(tmp_path)
    out = tmp_path / "doc"
    result = runner.invoke(app, ["dataset-doctor", str(recipe), "-p", "train", "val", "-o", str(out),
                                 "--num-process", "1", "--no-progress"])
    assert result.exit_code == 1, result.output
    assert f"unreadable: {planted['corrupt']}" in result.output
    assert f"~ {planted['val_copy']}" in result.output and f"~ {planted['near_leak']}" in result.output
    assert "small classes: yellow (2)" in result.output
    data = json.loads((out / "doctor.json").read_text())
    assert data["failed"] is True and data["counts"]["leaks"] == 2
    assert data["settings"] == {"phases": ["train", "val"], "threshold": 6, "hash": "phash", "size_factor": 4.0,
                                "aspect_factor": 2.0}


def test_clean_folder_exits_0(runner: CliRunner, tmp_path: Path) -> None:
    recipe = clean_dataset(tmp_path)
    result = runner.invoke(app, ["dataset-doctor", str(recipe), "-o", str(tmp_path / "doc"), "--hash", "dhash",
                                 "-t", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "leak" not in result.output.replace("leaks", "") and "unreadable:" not in result.output
    assert json.loads((tmp_path / "doc" / "doctor.json").read_text())["settings"]["hash"] == "dhash"


@pytest.mark.parametrize(("args", "message"), [(["--hash", "ahash"], "'ahash'"),  # choices are click enums
                                               (["-p", "holdout"], "'holdout'"),
                                               (["--set", "data.val.root=/nonexistent"], "")])
def test_user_errors_exit_2(runner: CliRunner, tmp_path: Path, args: list[str], message: str) -> None:
    recipe = clean_dataset(tmp_path)
    result = runner.invoke(app, ["dataset-doctor", str(recipe), "-o", str(tmp_path / "doc"), "--no-progress", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_doctor_page_in_browser(runner: CliRunner, tmp_path: Path) -> None:
    require_browser()
    recipe = clean_dataset(tmp_path)
    plant_problems(tmp_path)
    out = tmp_path / "doc"
    result = runner.invoke(app, ["dataset-doctor", str(recipe), "-o", str(out), "--num-process", "1",
                                 "--no-progress"])
    assert result.exit_code == 1, result.output
    check = open_page(out / "index.html", tmp_path / "shot.png", PAGE_COUNTS)
    assert check.console_errors == []
    assert len(check.images) >= 10
    assert all(i["complete"] and i["naturalWidth"] > 0 and i["src"].startswith("data:image/") for i in check.images)
    assert_picture(tmp_path / "shot.png", 800, 1200)
    data = json.loads((out / "doctor.json").read_text())
    assert check.values == {"counts": data["counts"], "verdict": "fail", "leakRows": 2}
