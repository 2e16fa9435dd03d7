"""Loading weights into models: published (through torch.hub's cache) and local files."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from urllib.error import URLError

import torch
from torch import nn

from clsctl.errors import CheckpointError, ClsctlError
from clsctl.models._meta import ModelMeta
from clsctl.readers import read_state_dict

logger = logging.getLogger("clsctl")


def hub_cache_path(url: str) -> Path:
    """Where torch.hub keeps (and looks for) the file behind ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def download_state_dict(url: str) -> dict[str, torch.Tensor]:
    """Return the state dict at ``url``, downloading it into torch.hub's cache unless it is already there.

    The cached file is read like any weights file (:func:`clsctl.readers.read_state_dict`: weights-only load,
    one-line errors), so a damaged cache entry is reported, not a traceback.

    Raises:
        ClsctlError: The file is not cached and cannot be downloaded (offline); the message names the URL and
            the path to put the file at.
    """
    cache_path = hub_cache_path(url)
    if not cache_path.is_file():
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(cache_path), progress=True)  # temporary file, then renamed
        except (URLError, OSError, ConnectionError) as exc:
            reason = str(getattr(exc, "reason", "") or exc).strip().splitlines()
            raise ClsctlError(
                f"could not download pretrained weights from {url} ({reason[0] if reason else type(exc).__name__}); "
                f"download that file on a machine with internet and put it at {cache_path}"
            ) from None
    return read_state_dict(cache_path)


def load_pretrained(model: nn.Module, meta: ModelMeta) -> None:
    """Load the published weights of ``meta`` into ``model``."""
    if meta.pretrained_url is None:
        raise ClsctlError(f"model '{meta.name}' has no published pretrained weights; use 'weights: FILE' instead")
    load_state_dict_checked(model, download_state_dict(meta.pretrained_url), source=meta.pretrained_url)


def load_weights_file(model: nn.Module, path: str | Path) -> None:
    """Load a local weights file into ``model`` (see :func:`clsctl.readers.read_state_dict` for the formats)."""
    load_state_dict_checked(model, read_state_dict(path), source=str(path))


def _classifier_prefix(model: nn.Module) -> str:
    from clsctl.models.heads import model_layout

    return model_layout(model).classifier + "."


def load_state_dict_checked(model: nn.Module, state: dict[str, Any], *, source: str,
                            allow_head_mismatch: bool = True) -> list[str]:
    """Load ``state`` strictly, except that a classifier that differs (size or layers) is re-initialised.

    Args:
        model: Model to load into.
        state: State dict.
        source: Where ``state`` came from, for messages.
        allow_head_mismatch: Re-initialise classifier keys that do not fit instead of failing.

    Returns:
        The model's keys that were re-initialised (left as the model built them).

    Raises:
        CheckpointError: Missing or unexpected keys, or a shape mismatch outside the classifier.
    """
    own = model.state_dict()
    head = _classifier_prefix(model) if allow_head_mismatch else None

    def in_head(key: str) -> bool:
        return head is not None and key.startswith(head)

    mismatched_keys = {k for k, v in state.items() if k in own and own[k].shape != v.shape}
    missing_keys = set(own) - set(state)
    unexpected_keys = set(state) - set(own)
    head_changed = any(in_head(k) for k in mismatched_keys | missing_keys | unexpected_keys)
    # When the classifier differs in any way, none of its old weights are used.
    reinit = sorted(k for k in own if in_head(k)) if head_changed else []
    problems = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                for k in sorted(mismatched_keys) if not in_head(k)]
    problems += [f"missing in checkpoint: {k}" for k in sorted(missing_keys) if not in_head(k)]
    problems += [f"not in model: {k}" for k in sorted(unexpected_keys) if not in_head(k)]
    if problems:
        more = f" (and {len(problems) - 3} more; -v lists them)" if len(problems) > 3 else ""
        logger.debug("weights from %s that do not fit:\n%s", source, "\n".join(problems))
        raise CheckpointError(f"weights from {source} do not fit {type(model).__name__}: "
                              f"{'; '.join(problems[:3])}{more}")
    model.load_state_dict({k: v for k, v in state.items() if k in own and k not in reinit}, strict=False)
    if reinit:
        logger.warning("classifier differs from %s; re-initialised: %s", source, ", ".join(reinit))
    return reinit


def load_partial(model: nn.Module, path: str | Path, *, prefix: str | None = None, strict: bool = False) -> list[str]:
    """Load the keys of a weights file that fit ``model`` (``model.init`` in recipes).

    Args:
        model: Model to load into.
        path: Weights file (see :func:`clsctl.readers.read_state_dict`).
        prefix: Take only keys under ``prefix.`` and strip it (e.g. ``backbone``).
        strict: Fail unless every model key is loaded.

    Returns:
        The model keys that were loaded.
    """
    state = read_state_dict(path)
    if prefix:
        cut = prefix.rstrip(".") + "."
        state = {k[len(cut):]: v for k, v in state.items() if k.startswith(cut)}
        if not state:
            raise CheckpointError(f"{path} has no keys under '{cut}'")
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(own) - set(fitting))
    if strict and skipped:
        raise CheckpointError(f"{path} does not initialise every parameter", details=[f"not loaded: {k}" for k in skipped[:20]])
    if not fitting:
        raise CheckpointError(f"no key of {path} fits {type(model).__name__}")
    model.load_state_dict(fitting, strict=False)
    logger.info("initialised %d of %d tensors from %s%s", len(fitting), len(own), path,
                f" (not loaded: {', '.join(skipped[:8])}{' ...' if len(skipped) > 8 else ''})" if skipped else "")
    return sorted(fitting)
