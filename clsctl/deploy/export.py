"""``clsctl export``: a checkpoint as ONNX or TorchScript, carrying its class names and preprocessing.

ONNX goes through ``torch.onnx.export`` with its TorchScript-based exporter (``dynamo=False``): deprecated since
torch 2.9 but present up to the torch versions clsctl supports, and it needs nothing beyond torch, whereas the
``torch.export``-based one needs ``onnxscript``, which the ``[onnx]`` extra does not install. Where the legacy
exporter is gone and ``onnxscript`` is installed, the new one is used. The file is then run with onnxruntime on
the same input as PyTorch and the outputs compared. TorchScript files are traced and
checked by loading them back.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clsctl.deploy._compare import ATOL, RTOL, Comparison, compare, random_input
from clsctl.engine.runtimes import INPUT_NAME, METADATA_JSON_KEYS as JSON_KEYS, OUTPUT_NAME
from clsctl.errors import ClsctlError

logger = logging.getLogger("clsctl")

FORMATS = ("onnx", "torchscript", "safetensors")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "safetensors": ".safetensors"}
DEFAULT_OPSET = 18


@dataclass
class ExportResult:
    """What :func:`export_checkpoint` wrote and how well it matches PyTorch.

    Attributes:
        path: The exported file.
        format: ``onnx`` or ``torchscript``.
        exporter: Which exporter made it (``dynamo``, ``torchscript`` for ONNX; ``trace`` for TorchScript).
        input_shape: Shape of the example input the model was exported with.
        comparison: Exported vs PyTorch outputs on a check input (None when the check was skipped).
        check_shape: Shape of that check input (another batch size when ``dynamic_batch``).
        metadata: What the file carries besides the model.
    """

    path: Path
    format: str
    exporter: str
    input_shape: tuple[int, ...]
    comparison: Comparison | None
    check_shape: tuple[int, ...] | None
    metadata: dict[str, str]


def export_metadata(loaded: Any) -> dict[str, str]:
    """Class names, preprocessing and provenance of a loaded checkpoint (an
    :class:`~clsctl.engine.loading.LoadedModel`), as JSON strings."""
    from clsctl import __version__

    return {
        "class_names": json.dumps(list(loaded.class_names)),
        "preprocessing": json.dumps(loaded.preprocessing.to_dict()),
        "model_name": loaded.model_name,
        "multi_label": json.dumps(bool(loaded.multi_label)),
        "deploy": json.dumps(bool(loaded.info.get("deploy"))),
        "producer": f"clsctl {__version__}",
    }


def default_output(checkpoint: Path, fmt: str) -> Path:
    """``run/best.pt`` -> ``run/best.onnx``, ``run/best.torchscript.pt`` or ``run/best.safetensors``."""
    return checkpoint.with_name(checkpoint.stem + SUFFIXES[fmt])


def _export_safetensors(loaded: Any, path: Path) -> tuple[Path, dict[str, str]]:
    """Weights and metadata as safetensors; a folder ``path`` gets a Hub-ready ``model.safetensors`` and
    ``config.json`` (see :mod:`clsctl.hf_hub`)."""
    from clsctl.hf_hub import model_config, write_model_folder
    from clsctl.models.safetensors_io import checkpoint_metadata, write_safetensors

    metadata = checkpoint_metadata(loaded)
    if path.is_dir() or not path.suffix:
        config = model_config(model_name=loaded.recipe.model.name, class_names=loaded.class_names,
                              preprocessing=loaded.preprocessing.to_dict(), recipe=loaded.recipe.to_dict(),
                              deploy=bool(loaded.info.get("deploy")),
                              fused_conv_bn=bool(loaded.info.get("fused_conv_bn")))
        return write_model_folder(path, loaded.module.state_dict(), config, metadata), metadata
    write_safetensors(loaded.module.state_dict(), path, metadata)
    return path, metadata


def _run_exported(path: Path, inputs: torch.Tensor) -> torch.Tensor:
    """Outputs of the written file, read back through the one model loader (as ``infer`` and ``test`` read it)."""
    from clsctl.engine.loading import load_model

    with torch.inference_mode():
        return load_model(path).module(inputs)


def _onnx_exporter() -> str:
    if importlib.util.find_spec("torch.onnx._internal.torchscript_exporter") is not None:
        return "torchscript"
    if importlib.util.find_spec("onnxscript") is not None:
        return "dynamo"
    raise ClsctlError("this torch has no TorchScript-based ONNX exporter; its torch.export-based one needs "
                      "onnxscript: pip install onnxscript")


def _export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int, dynamic_batch: bool,
                 metadata: dict[str, str]) -> str:
    try:
        import onnx
    except ImportError as exc:
        raise ClsctlError("ONNX export needs the onnx extra: pip install 'clsctl[onnx]'") from exc
    exporter = _onnx_exporter()
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation on every call
        try:
            if exporter == "dynamo":
                shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
                program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset,
                                            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                            dynamic_shapes=shapes)
                program.save(str(path))
            else:
                torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=axes)
        except Exception as exc:  # unsupported operator or opset: the exporter's message says which
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ClsctlError(f"ONNX export failed ({exporter} exporter, opset {opset}): {first}") from exc
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return exporter


def _export_torchscript(model: torch.nn.Module, example: torch.Tensor, path: Path,
                        metadata: dict[str, str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace is deprecated in favour of torch.export
        try:
            traced = torch.jit.trace(model, (example,), check_trace=False)
        except Exception as exc:  # noqa: BLE001  the tracer's own message is the useful part
            raise ClsctlError(f"TorchScript tracing failed: {str(exc).strip().splitlines()[0]}") from exc
        torch.jit.save(traced, str(path), _extra_files=_extra_files(metadata))


def _extra_files(metadata: dict[str, str]) -> dict[str, str]:
    # JSON documents under their own names; the short strings together in clsctl.json.
    rest = {key: value for key, value in metadata.items() if key not in JSON_KEYS}
    return {**{f"{key}.json": metadata[key] for key in JSON_KEYS}, "clsctl.json": json.dumps(rest)}


def export_checkpoint(checkpoint: str | Path, fmt: str = "onnx", *, out: str | Path | None = None,
                      opset: int | None = None, dynamic_batch: bool = False, check: bool = True,
                      rtol: float = RTOL, atol: float = ATOL, seed: int = 0) -> ExportResult:
    """Export a checkpoint's model (training or deploy form) and check the file against PyTorch.

    Args:
        checkpoint: A clsctl checkpoint; its recipe, class names and preprocessing go into the file.
        fmt: ``onnx``, ``torchscript`` or ``safetensors`` (weights only, with class names, preprocessing and
            recipe as metadata).
        out: Output file (default: next to the checkpoint, ``.onnx`` / ``.torchscript.pt`` / ``.safetensors``);
            for safetensors an existing folder (or a path ending in ``/``) gets ``model.safetensors`` and
            ``config.json``, the layout ``hf-hub:`` names load.
        opset: ONNX opset (default 18).
        dynamic_batch: Let the batch dimension vary (ONNX: a symbolic axis; TorchScript traces keep it free
            for convolutional models anyway). The check then runs on another batch size than the export.
        check: Run the exported file (onnxruntime for ONNX) and compare with PyTorch.
        rtol: Allowed difference relative to the largest output.
        atol: Allowed absolute difference on top.
        seed: Seed of the random example and check inputs.

    Raises:
        ClsctlError: Unknown format, missing extra, export failure, or outputs beyond tolerance.
    """
    from clsctl.engine.loading import load_model

    if fmt not in FORMATS:
        raise ClsctlError(f"unknown export format '{fmt}' (choose {' or '.join(FORMATS)})")
    if opset is not None and fmt != "onnx":
        raise ClsctlError("--opset applies to --format onnx only")
    checkpoint = Path(checkpoint)
    path = Path(out) if out is not None else default_output(checkpoint, fmt)
    loaded = load_model(checkpoint, kind="checkpoint")
    model = loaded.module
    size = loaded.input_size
    # torch.export specialises dimensions of size 1, so a dynamic batch is exported from an example of 2.
    example = random_input(2 if dynamic_batch else 1, size, seed)
    metadata = export_metadata(loaded)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        exporter = "safetensors"
        path, metadata = _export_safetensors(loaded, path)
    elif fmt == "onnx":
        exporter = _export_onnx(model, example, path, opset or DEFAULT_OPSET, dynamic_batch, metadata)
    else:
        exporter = "trace"
        _export_torchscript(model, example, path, metadata)
    if not check:
        return ExportResult(path, fmt, exporter, tuple(example.shape), None, None, metadata)
    inputs = random_input(3 if dynamic_batch else 1, size, seed + 1)
    with torch.inference_mode():
        reference = model(inputs)
    output = _run_exported(path, inputs)
    comparison = compare(reference, output, rtol=rtol, atol=atol)
    if not comparison.ok:
        raise ClsctlError(f"{path} does not match PyTorch: max abs diff {comparison.max_abs_diff:.3g} > "
                          f"tolerance {comparison.tolerance:.3g} (the file is kept for inspection)")
    return ExportResult(path, fmt, exporter, tuple(example.shape), comparison, tuple(inputs.shape), metadata)
