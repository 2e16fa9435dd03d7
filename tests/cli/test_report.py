"""clsctl report, and its page in a real browser (headless Chromium)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis_helpers import assert_picture
from browser import open_page, require_browser
from clsctl.cli.main import app

PAGE_NUMBERS = """() => {
  const metrics = {};
  document.querySelectorAll('#metrics td[data-metric]').forEach(td => { metrics[td.dataset.metric] = td.textContent; });
  const perClass = {};
  document.querySelectorAll('#per-class tbody tr').forEach(tr => {
    const name = tr.querySelector('td[data-class]').dataset.class;
    perClass[name] = Array.from(tr.querySelectorAll('td[data-metric]')).map(td => td.textContent);
  });
  const header = document.querySelector('#per-class th');
  header.click();
  const ascending = Array.from(document.querySelectorAll('#per-class td[data-class]')).map(td => td.dataset.class);
  header.click();
  const descending = Array.from(document.querySelectorAll('#per-class td[data-class]')).map(td => td.dataset.class);
  return {metrics, perClass, ascending, descending, ece: document.querySelector('[data-metric="ece"]').textContent,
          sections: Array.from(document.querySelectorAll('section h2')).map(h => h.textContent)};
}"""


def per_class_rows(output: str, names: list[str]) -> dict[str, list[str]]:
    """precision, recall, f1, support per class from `clsctl test`'s table."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│") if c.strip()]
        if len(cells) == 5 and cells[0] in names:
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.slow
def test_report_page_in_browser_matches_clsctl_test(runner: CliRunner, trained_checkpoint: Path,
                                                    tmp_path: Path) -> None:
    require_browser()
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", str(trained_checkpoint), "--split", "val", "-o", str(out),
                                 "--examples", "2", "--bench-iters", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "ECE (%)" in result.output and f"report: {out / 'index.html'}" in result.output
    tested = runner.invoke(app, ["test", str(trained_checkpoint), "--split", "val", "-o", str(tmp_path / "p.json"),
                                 "--no-progress"])
    assert tested.exit_code == 0, tested.output
    test_metrics = json.loads((tmp_path / "p.json").read_text())["metrics"]
    names = json.loads((out / "report.json").read_text())["class_names"]

    check = open_page(out / "index.html", tmp_path / "shot.png", PAGE_NUMBERS)
    assert check.console_errors == []
    assert len(check.images) >= 5
    assert all(i["complete"] and i["naturalWidth"] > 0 and i["src"].startswith("data:image/") for i in check.images)
    assert_picture(tmp_path / "shot.png", 800, 1500)
    page = check.values
    for key in ("accuracy/top1", "accuracy/top5", "macro/precision", "macro/recall", "macro/f1"):
        assert page["metrics"][key] == f"{test_metrics[key]:.2f}", key
    assert page["metrics"]["loss"] == f"{test_metrics['loss']:.4f}"
    assert page["metrics"]["samples"] == "12"
    assert page["perClass"] == per_class_rows(tested.output, names)
    assert page["ascending"] == sorted(names) and page["descending"] == sorted(names, reverse=True)
    assert page["sections"] == ["Model", "Metrics", "Confusion", "Calibration", "Examples", "Speed on this machine"]
    assert float(page["ece"]) == pytest.approx(json.loads((out / "report.json").read_text())["ece"], abs=0.006)


def test_bad_split_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path / "x.pt"), "--split", "holdout"])
    assert result.exit_code == 2 and "Invalid value" in result.output and "'holdout'" in result.output


def test_missing_checkpoint_is_a_user_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path / "x.pt"), "-o", str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code == 2 and "checkpoint not found" in result.output
