"""Exported models as :class:`torch.nn.Module` s that run their own runtime, so the evaluation loop, ``infer``,
``benchmark`` and the server use an export exactly as they use a checkpoint.

:func:`load_export` reads an export's metadata (class names and preprocessing, written by ``clsctl export``)
and wraps the runtime: ONNX Runtime for ``.onnx``, ``torch.jit`` for TorchScript. Each wrapper takes the
normalised float batch a PyTorch model takes and returns float32 logits on the input's device.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clsctl.data.preprocessing import Preprocessing
from clsctl.errors import CheckpointError, ClsctlError

INPUT_NAME, OUTPUT_NAME = "input", "logits"
METADATA_JSON_KEYS = ("class_names", "preprocessing")  # metadata values that are JSON documents


class OnnxModule(nn.Module):
    """An ONNX file run by ONNX Runtime (CPU, or CUDA when its provider is installed and the input is there).

    Args:
        path: The ``.onnx`` file.
        device: Where inputs come from; ``cuda`` uses ONNX Runtime's CUDA provider when it is available.
    """

    def __init__(self, path: Path, device: torch.device) -> None:
        super().__init__()
        ort = _onnxruntime()
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # noqa: BLE001  onnxruntime raises its own types for bad files
            raise CheckpointError(f"{path} is not an ONNX model ONNX Runtime can load ({_first_line(exc)})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self.half = "float16" in str(inputs[0].type)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().to("cpu", torch.float16 if self.half else torch.float32).contiguous().numpy()
        (output,) = self.session.run([self.output_name], {self.input_name: array})
        return torch.from_numpy(output).float().to(images.device)


class TorchScriptModule(nn.Module):
    """A TorchScript file, loaded with ``torch.jit.load``."""

    def __init__(self, path: Path, device: torch.device) -> None:
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit announces its deprecation on every load
            try:
                self.scripted = torch.jit.load(str(path), map_location=device)
            except Exception as exc:  # noqa: BLE001  torch.jit raises RuntimeError and others for foreign files
                raise CheckpointError(f"{path} is not a TorchScript model ({_first_line(exc)})") from None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.scripted(images).float()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ClsctlError("running an ONNX file needs onnxruntime: pip install 'clsctl[onnx]'") from exc
    return onnxruntime


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (class names and preprocessing as JSON strings)."""
    try:
        import onnx
    except ImportError as exc:
        raise ClsctlError("reading an ONNX file needs onnx: pip install 'clsctl[onnx]'") from exc
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001  protobuf's DecodeError and others
        raise CheckpointError(f"{path} is not an ONNX file ({_first_line(exc)})") from None
    return {entry.key: entry.value for entry in proto.metadata_props}


def read_torchscript_metadata(path: str | Path) -> dict[str, str]:
    """The metadata ``clsctl export`` put in a TorchScript file's extra files."""
    names = (*(f"{key}.json" for key in METADATA_JSON_KEYS), "clsctl.json")
    files = {name: "" for name in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.jit.load(str(path), map_location="cpu", _extra_files=files)
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{path} is not a TorchScript model ({_first_line(exc)})") from None
    text = {name: value.decode() if isinstance(value, bytes) else value for name, value in files.items()}
    rest = json.loads(text["clsctl.json"]) if text["clsctl.json"] else {}
    return {**{key: text[f"{key}.json"] for key in METADATA_JSON_KEYS if text[f"{key}.json"]}, **rest}


def parse_metadata(metadata: dict[str, str], path: Path) -> tuple[list[str], Preprocessing, dict[str, Any]]:
    """Class names, preprocessing and the other facts of an export's metadata.

    Raises:
        CheckpointError: An export without clsctl's metadata (not written by ``clsctl export``).
    """
    if "class_names" not in metadata or "preprocessing" not in metadata:
        raise CheckpointError(f"{path} has no clsctl metadata (class names, preprocessing): export it with "
                              f"`clsctl export CHECKPOINT`")
    try:
        names = [str(name) for name in json.loads(metadata["class_names"])]
        prep = Preprocessing.from_dict(json.loads(metadata["preprocessing"]), str(path))
        facts = {key: json.loads(value) for key, value in metadata.items()
                 if key in ("deploy", "multi_label", "half", "int8")}
    except (json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"{path}: its clsctl metadata is not JSON ({exc})") from None
    facts["model_name"] = str(metadata.get("model_name", ""))
    return names, prep, facts


def _onnx(path: Path, device: torch.device) -> tuple[nn.Module, dict[str, str]]:
    return OnnxModule(path, device), read_onnx_metadata(path)


def _torchscript(path: Path, device: torch.device) -> tuple[nn.Module, dict[str, str]]:
    return TorchScriptModule(path, device), read_torchscript_metadata(path)


LOADERS = {"onnx": _onnx, "torchscript": _torchscript}


def open_export(path: Path, kind: str, device: torch.device) -> tuple[nn.Module, list[str], Preprocessing,
                                                                     dict[str, Any]]:
    """An exported model's runner, class names, preprocessing and other stored facts (``model_name``,
    ``multi_label``, ``deploy``, ...), for :func:`clsctl.engine.loading.load_model`.

    Raises:
        CheckpointError: Missing, unreadable, or without clsctl's metadata.
        ClsctlError: The runtime the format needs is not installed.
    """
    from clsctl.readers import check_file

    if kind not in LOADERS:
        raise ClsctlError(f"reading {kind} exports is not supported here (formats: {', '.join(sorted(LOADERS))})")
    check_file(path, f"{kind} model", CheckpointError)
    module, metadata = LOADERS[kind](path, device)
    names, prep, facts = parse_metadata(metadata, path)
    return module, names, prep, facts
