"""A temporary torch.hub cache with stand-in published weights, so the pretrained defaults run without a download."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import pytest


def no_download(url: str, *args: object, **kwargs: object) -> None:
    """Replaces ``torch.hub.download_url_to_file``: the tests are offline."""
    raise URLError(f"offline test: no download of {url}")


def empty_hub_cache(monkeypatch: pytest.MonkeyPatch, root: Path) -> Path:
    """Point torch.hub's cache at ``root/torch/hub`` (through ``TORCH_HOME``), empty; downloads fail."""
    import torch

    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a set_dir() elsewhere would override TORCH_HOME
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return root / "torch" / "hub"


def stand_in_default_model(monkeypatch: pytest.MonkeyPatch, root: Path, name: str = "shufflenet_v2_x0_5") -> Path:
    """Make ``name`` (a small model with published weights) the default of infer and cam, and put a stand-in for
    its weights file (random init, the published file name) in an empty temporary hub cache.

    Returns:
        The stand-in file.
    """
    import torch

    from clsctl.engine import loading
    from clsctl.models import create_model, model_info
    from clsctl.models.weights import hub_cache_path

    empty_hub_cache(monkeypatch, root)
    monkeypatch.setattr(loading, "DEFAULT_MODEL", name)
    path = hub_cache_path(model_info(name).pretrained_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(create_model(name).state_dict(), path)
    return path
