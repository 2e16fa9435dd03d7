"""Weights as ``.safetensors``: tensors plus string metadata, written and read without pickle.

A file clsctl exports carries, next to the weights, what is needed to use them: the class names, the
preprocessing and the resolved recipe, each as a JSON string in the safetensors header (the format allows
only string values there). :func:`read_safetensors` never calls ``torch.load``: loading such a file cannot
run code, whatever it contains.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from clsctl.atomic import write_bytes_atomic
from clsctl.errors import CheckpointError, ClsctlError

SUFFIX = ".safetensors"
FORMAT = "clsctl-weights"  # the "format" metadata entry of files clsctl writes
JSON_KEYS = ("class_names", "preprocessing", "recipe", "deploy", "fused_conv_bn", "multi_label")  # JSON entries


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
    metadata = read_safetensors_metadata(path)
    from safetensors import SafetensorError

    try:
        tensors = _safetensors_torch().load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a safetensors file ({exc})") from exc
    return tensors, metadata


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file's header, without reading its tensors.

    Raises:
        CheckpointError: Missing file or not a safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    _safetensors_torch()
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a safetensors file ({exc})") from exc


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
    tensors = {key: value.detach().to("cpu").contiguous().clone() for key, value in state.items()}
    data = st.save(tensors, metadata=dict(metadata or {}))
    return write_bytes_atomic(path, data)


def checkpoint_metadata(loaded: Any) -> dict[str, str]:
    """What a ``.safetensors`` export of a loaded checkpoint carries besides the weights.

    Args:
        loaded: A :class:`clsctl.engine.loading.LoadedModel` of a trained model (it has a recipe).
    """
    from clsctl import __version__

    return {
        "format": FORMAT,
        "model_name": loaded.recipe.model.name,
        "class_names": json.dumps(list(loaded.class_names)),
        "preprocessing": json.dumps(loaded.preprocessing.to_dict()),
        "recipe": json.dumps(loaded.recipe.to_dict()),
        "multi_label": json.dumps(bool(loaded.multi_label)),
        "deploy": json.dumps(bool(loaded.info.get("deploy"))),
        "fused_conv_bn": json.dumps(bool(loaded.info.get("fused_conv_bn"))),
        "producer": f"clsctl {__version__}",
    }
