"""Shared fixtures: tiny generated image folders, tiny recipes, one trained tiny checkpoint."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from helpers import CLASSES, tiny_recipe_dict, write_image_folder, write_train_val

__all__ = ["CLASSES", "tiny_recipe_dict", "write_image_folder"]


@pytest.fixture()
def runner() -> CliRunner:
    """Invokes the Typer app in-process."""
    return CliRunner()


@pytest.fixture()
def image_root(tmp_path: Path) -> Path:
    """A dataset with ``train/`` and ``val/`` image folders of three colour classes."""
    write_train_val(tmp_path / "data", train_per_class=8, val_per_class=4)
    return tmp_path / "data"


@pytest.fixture()
def tiny_recipe(tmp_path: Path, image_root: Path) -> Path:
    """Path of a tiny recipe YAML (2 epochs of ``test_resnet`` on generated images)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict(image_root, tmp_path / "run")), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``best.pt`` of a tiny run, trained once per test session; treat it as read-only."""
    from clsctl.engine.loop import train
    from clsctl.recipe import validate_recipe

    root = tmp_path_factory.mktemp("trained")
    data = root / "data"
    write_train_val(data, train_per_class=8, val_per_class=4)
    recipe = validate_recipe(tiny_recipe_dict(data, root / "run", epochs=3))
    result = train(recipe, show_progress=False)
    assert result.best_checkpoint is not None
    return result.best_checkpoint


@pytest.fixture()
def ctrl_c_enabled() -> Iterator[None]:
    """Python's own SIGINT handler for the test, even when the test run was started with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)



def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skips tests marked ``cuda`` on machines without a CUDA device (CI never has one)."""
    if not any(item.get_closest_marker("cuda") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)
