"""One reader per kind of file a user hands to clsctl: recipe, checkpoint, weights, JSON, metrics log, image.

Each reader turns every way the file can be wrong (missing, a folder, empty, not UTF-8, not a mapping, not a
metrics log, not an image, not a checkpoint, a pickle that a safe load refuses) into a one-line
:class:`~clsctl.errors.ClsctlError` that names the file and what is wrong with it. Every command reads the files
it is pointed at through these functions; torch and Pillow are imported only by the readers that need them.

PyTorch files are always loaded with ``torch.load(weights_only=True)``: a pickle that would run code is refused,
never executed.
"""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clsctl.errors import CheckpointError, ClsctlError, DataError, RecipeError

if TYPE_CHECKING:  # pragma: no cover - types only
    import torch
    from PIL import Image

# What a clsctl checkpoint is (``engine/checkpoint.py`` writes it): the ``format`` tag and the keys every tool
# reads. Defined here, below the engine, because every layer reads checkpoints through this module.
CHECKPOINT_FORMAT = "clsctl-checkpoint"
CHECKPOINT_REQUIRED_KEYS = ("model", "recipe", "class_names", "preprocessing")

# First bytes of formats people point at the wrong command, for "it looks like ..." hints.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"RIFF", "a WebP image"),
    (b"PK\x03\x04", "a zip archive (PyTorch files are zip archives)"),
    (b"\x80", "a pickle"),
)


def sniff(path: Path) -> str | None:
    """What the first bytes of ``path`` suggest it is (``"a PNG image"``), or None."""
    try:
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError:
        return None
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    try:  # incremental: a character cut at byte 512 is not a decoding error
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False).lstrip()
    except UnicodeDecodeError:
        return None
    if text.startswith(("{", "[")):
        return "JSON"
    if text:
        return "text"
    return None


def _looks_like(path: Path) -> str:
    kind = sniff(path)
    return f"; it looks like {kind}" if kind else ""


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def check_file(path: str | Path, what: str, error: type[ClsctlError] = ClsctlError) -> Path:
    """``path`` as a :class:`Path` when it is a readable, non-empty file.

    Args:
        path: The file.
        what: What the file should be, for messages ("recipe file", "image").
        error: Exception type to raise.

    Raises:
        ClsctlError: (or ``error``) The path is missing, a folder, not a regular file or empty.
    """
    path = Path(path)
    if path.is_dir():
        raise error(f"{path} is a folder, not {_a(what)}")
    if not path.exists():
        raise error(f"{what} not found: {path}")
    if not path.is_file():
        raise error(f"{path} is not a regular file ({_a(what)} was expected)")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise error(f"{path} is empty (0 bytes), not {_a(what)}")
    return path


def read_text(path: str | Path, what: str, error: type[ClsctlError] = ClsctlError, *, kind: str | None = None) -> str:
    """The UTF-8 text of a file (after :func:`check_file`).

    Args:
        path: The file.
        what: What the file should be, for messages ("recipe file").
        error: Exception type to raise.
        kind: What a text file of this sort is called when it is not text ("JSON file"; default ``what``).

    Raises:
        ClsctlError: (or ``error``) As :func:`check_file`, or the bytes are not UTF-8 text.
    """
    path = check_file(path, what, error)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path} is not {_a(kind or what)}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                    f"{exc.start}){_looks_like(path)}") from None


# --------------------------------------------------------------------------- recipes (YAML)


def read_recipe_yaml(path: str | Path) -> dict[str, Any]:
    """One recipe file's YAML mapping (``yaml.safe_load``); an empty document is an empty mapping.

    Raises:
        RecipeError: Missing, a folder, empty, not UTF-8, invalid YAML or not a mapping at the top level.
    """
    import yaml

    path = Path(path)
    text = read_text(path, "recipe file", RecipeError)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: invalid YAML{_yaml_where(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping at the top level (got {_type_name(data)})")
    return data


def _yaml_where(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or ""
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{where}: {problem}" if problem else where


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "a number", float: "a number",
            bool: "true/false"}.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------- JSON and metrics logs


def read_json(path: str | Path, *, what: str, error: type[ClsctlError] = ClsctlError) -> Any:
    """Parse a JSON file.

    Args:
        path: The file.
        what: What the file is ("predictions file"), for messages.
        error: Exception type to raise.

    Raises:
        ClsctlError: (or ``error``) Missing, a folder, empty, not UTF-8 or not JSON.
    """
    path = Path(path)
    text = read_text(path, what, error, kind="JSON file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path} is not a JSON file (line {exc.lineno}, column {exc.colno}: {exc.msg})"
                    f"{_looks_like(path)}") from None


METRICS_LOG = "metrics.jsonl"


def read_metrics_log(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``metrics.jsonl`` (JSON lines, one object per line, as ``train`` writes; a run folder holding
    one is accepted too). Blank lines and a truncated line are skipped.

    Raises:
        ClsctlError: Missing, a folder without a log, empty, not UTF-8, or not JSON lines of objects.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / METRICS_LOG).is_file():
            raise ClsctlError(f"{path} is a folder without a {METRICS_LOG}, not a metrics log")
        path = path / METRICS_LOG
    text = read_text(path, "metrics log")
    records: list[dict[str, Any]] = []
    problem = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            problem = problem or f"line {number} is not JSON"
            continue
        if not isinstance(record, dict):
            problem = problem or f"line {number} is {_type_name(record)}, not a JSON object"
            continue
        records.append(record)
    if not records or not any("mode" in r for r in records):
        reason = problem or "no record has a 'mode' key"
        raise ClsctlError(f"{path} is not a metrics log (JSON lines, one object per line, as train writes "
                          f"{METRICS_LOG}): {reason}")
    return records


# --------------------------------------------------------------------------- PyTorch files

# What torch's weights-only unpickler says when a pickle names a global (class, function) it does not allow.
_UNSAFE_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL|unrecognized function) ([\w.<>]+)")


def load_torch_file(path: str | Path, what: str = "PyTorch file",
                    error: type[ClsctlError] = CheckpointError) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one-line errors.

    Raises:
        CheckpointError: (or ``error``) Missing, a folder, empty, not a PyTorch file, or a pickle holding Python
            objects that a weights-only load refuses (its code never runs).
    """
    import pickle

    import torch

    path = check_file(path, what, error)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _UNSAFE_GLOBAL.search(str(exc))
        if found:
            name = found.group(1) or "an object"
            raise error(f"{path}: unsafe pickle refused: loading it would run Python code ({name}); clsctl loads "
                        f"only tensors and plain data (torch.load weights_only=True)") from None
        raise error(f"{path} is not {_a(what)}: not a PyTorch file{_looks_like(path)}") from None
    except Exception as exc:  # torch raises many types for files that are not its own
        kind = sniff(path)
        if kind is not None and kind.startswith(("a zip", "a pickle")):
            raise error(f"{path} is not {_a(what)}: a damaged or foreign PyTorch file ({type(exc).__name__}: "
                        f"{_first_line(exc)})") from None
        raise error(f"{path} is not {_a(what)}: not a PyTorch file{_looks_like(path)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def _is_state_dict(data: Any) -> bool:
    import torch

    return isinstance(data, dict) and bool(data) and all(isinstance(v, torch.Tensor) for v in data.values())


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A clsctl checkpoint (what ``train`` writes): loaded safely and checked for the keys every tool needs.

    Raises:
        CheckpointError: As :func:`load_torch_file`, a plain state dict, another PyTorch file, or a clsctl
            checkpoint without ``model``, ``recipe``, ``class_names`` or ``preprocessing``.
    """
    return read_checkpoint_data(load_torch_file(path, "clsctl checkpoint"), path)


def read_checkpoint_data(data: Any, path: str | Path) -> dict[str, Any]:
    """Check that what a PyTorch file at ``path`` held is a complete clsctl checkpoint, and return it.

    Raises:
        CheckpointError: A plain state dict, another PyTorch file, or a clsctl checkpoint without ``model``,
            ``recipe``, ``class_names`` or ``preprocessing``.
    """
    path = Path(path)
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        nested = isinstance(data, dict) and any(_is_state_dict(data.get(k))
                                                for k in ("model", "state_dict", "model_state_dict"))
        if _is_state_dict(data) or nested:
            raise CheckpointError(f"{path} is a plain state dict, not a clsctl checkpoint: use it with --model NAME "
                                  f"--weights {path}, or as model.weights in a recipe")
        raise CheckpointError(f"{path} is not a clsctl checkpoint (a PyTorch file holding {_type_name(data)})")
    missing = [k for k in CHECKPOINT_REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"{path} is an incomplete clsctl checkpoint (missing {', '.join(missing)})")
    return data


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a weights file: torchvision/timm format, wrapped under ``model``/``state_dict``, a clsctl
    checkpoint (its ``model``), or ``.safetensors`` (read without pickle). DataParallel/DDP (``module.``) and
    ``torch.compile`` (``_orig_mod.``) prefixes are removed.

    Raises:
        CheckpointError: As :func:`load_torch_file`, or the file holds no state dict of tensors.
    """
    from clsctl.models.safetensors_io import is_safetensors, read_safetensors

    path = Path(path)
    if is_safetensors(path):
        data = read_safetensors(check_file(path, "weights file", CheckpointError))[0]  # no pickle involved
        return _strip_wrapper_prefix(data)
    data = load_torch_file(path, "weights file")
    if isinstance(data, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not _is_state_dict(data):
        raise CheckpointError(f"{path} is not a weights file: it holds no state dict of tensors "
                              f"(a PyTorch file holding {_type_name(data)})")
    return _strip_wrapper_prefix(data)


def _strip_wrapper_prefix(data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` (DataParallel/DDP) or ``_orig_mod.`` (torch.compile) prefix every key carries."""
    for prefix in ("module.", "_orig_mod."):
        if data and all(k.startswith(prefix) for k in data):
            data = {k[len(prefix):]: v for k, v in data.items()}
    return data


# --------------------------------------------------------------------------- images


def read_image(path: str | Path) -> Image.Image:
    """An image file, decoded to an upright RGB PIL image by the one decode layer (:mod:`clsctl.data.decode`:
    the same pixels training and evaluation get).

    Raises:
        DataError: Missing, a folder, empty, too many pixels, or not an image any decoder reads.
    """
    from PIL import Image

    return Image.fromarray(read_image_tensor(path).permute(1, 2, 0).numpy())


def read_image_tensor(path: str | Path) -> torch.Tensor:
    """An image file as the ``(3, H, W)`` uint8 RGB tensor every pipeline takes (see :func:`read_image`).

    Raises:
        DataError: Missing, a folder, empty, too many pixels, or not an image any decoder reads.
    """
    from clsctl.data.decode import DECODE_ERRORS, decode_file

    path = check_file(path, "image", DataError)
    try:
        return decode_file(path)
    except DECODE_ERRORS as exc:
        reason = _first_line(exc).replace(str(path), "").strip(" :'\"") or type(exc).__name__
        raise DataError(f"{path} is not an image ({reason}){_looks_like(path)}") from None
