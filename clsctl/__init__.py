"""clsctl: train, evaluate and inspect image classifiers in PyTorch.

The public API is imported lazily so that ``import clsctl`` (and the CLI's ``--help``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_recipe": "clsctl.recipe.load",
    "create_model": "clsctl.models._factory",
    "list_models": "clsctl.models._factory",
    "model_info": "clsctl.models._factory",
    "train": "clsctl.engine.loop",
    "evaluate": "clsctl.engine.evaluate",
    "predict": "clsctl.engine.evaluate",
    "load_model": "clsctl.engine.loading",
    "Preprocessing": "clsctl.data.preprocessing",
    "prepare_data": "clsctl.data.prepare",
    "hub": "clsctl.hub",
    "report": "clsctl.analysis.report",
    "dataset_doctor": "clsctl.analysis.doctor",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        if _API[name] == f"clsctl.{name}":  # a submodule, e.g. clsctl.hub
            return importlib.import_module(_API[name])
        if _API[name] == "clsctl.models._factory":
            importlib.import_module("clsctl.models")  # registers the families
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'clsctl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
