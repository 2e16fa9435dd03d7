"""docs/model_zoo.md is generated from the registry and must be up to date."""

from __future__ import annotations

from pathlib import Path

from clsctl.models import list_models
from clsctl.models._zoo_doc import DOC_PATH, main, render_model_zoo


def test_doc_is_up_to_date() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render_model_zoo(), (
        "docs/model_zoo.md is stale: run python -m clsctl.models._zoo_doc"
    )


def test_doc_lists_every_model_with_its_numbers(tmp_path: Path) -> None:
    path = tmp_path / "zoo.md"
    main(path)
    text = path.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(list_models())
    row = next(r for r in rows if r.startswith("| `repvgg_a0` |"))
    assert "9,108,968 / 8,309,384" in row and "1.52G" in row and "MMPretrain" in row
    row = next(r for r in rows if r.startswith("| `resnet50` |"))
    assert "25,557,032" in row and "| yes |" in row and "torchvision weights metadata" in row
