"""Weights as ``.safetensors``: tensors plus string metadata, written and read without pickle.

A file clsctl exports carries, next to the weights, what is needed to use them: the class names, the
preprocessing and the resolved recipe, each as a JSON string in the safetensors header (the format allows
only string values there). :func:`read_safetensors` never calls ``torch.load``: loading such a file cannot
run code, whatever it contains.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from clsctl.errors import CheckpointError, ClsctlError

SUFFIX = ".safetensors"
FORMAT = "clsctl-weights"  # the "format" metadata entry of files clsctl writes
JSON_KEYS = ("class_names", "preprocessing", "recipe")  # metadata entries holding JSON documents


def is_safetensors(path: str | Path) -> bool:
    """Whether ``path`` names a safetensors file (by its suffix)."""
    return str(path).lower().endswith(SUFFIX)


def _safetensors_torch() -> ModuleType:
    try:
        import safetensors.torch
    except ImportError as exc:
        raise ClsctlError("reading and writing .safetensors needs the safetensors package: "
                          "pip install 'clsctl[safetensors]'") from exc
    return safetensors.torch


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the metadata of a safetensors file.

    Raises:
        CheckpointError: Missing file or not a safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    st = _safetensors_torch()
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
        tensors = st.load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a safetensors file ({exc})") from exc
    return tensors, metadata


def decoded_metadata(metadata: dict[str, str]) -> dict[str, Any]:
    """The metadata with its JSON entries (class names, preprocessing, recipe) parsed."""
    out: dict[str, Any] = dict(metadata)
    for key in JSON_KEYS:
        if key in out:
            try:
                out[key] = json.loads(out[key])
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"safetensors metadata '{key}' is not JSON ({exc})") from exc
    return out


def write_safetensors(state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename).

    Tensors are copied to contiguous CPU memory of their own: safetensors refuses tensors that share storage
    (tied weights) or views.

    Args:
        state: Name -> tensor.
        path: Destination.
        metadata: String key -> string value, stored in the file's header.
    """
    st = _safetensors_torch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().to("cpu").contiguous().clone() for key, value in state.items()}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        st.save_file(tensors, tmp_name, metadata=dict(metadata or {}))
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def checkpoint_metadata(loaded: Any) -> dict[str, str]:
    """What a ``.safetensors`` export of a loaded checkpoint carries besides the weights.

    Args:
        loaded: A :class:`clsctl.engine.build.LoadedModel`.
    """
    from clsctl import __version__

    return {
        "format": FORMAT,
        "model_name": loaded.recipe.model.name,
        "class_names": json.dumps(list(loaded.class_names)),
        "preprocessing": json.dumps(loaded.preprocessing),
        "recipe": json.dumps(loaded.recipe.to_dict()),
        "deploy": json.dumps(bool(loaded.checkpoint.get("deploy"))),
        "fused_conv_bn": json.dumps(bool(loaded.checkpoint.get("fused_conv_bn"))),
        "producer": f"clsctl {__version__}",
    }
