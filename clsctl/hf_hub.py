"""Hugging Face Hub files: fetched through ``huggingface_hub``'s cache, and the layout of a clsctl model repository.

This module knows files, not models (it imports nothing of clsctl but the errors and the safetensors codec):

* any file of a Hub repository is fetched through ``huggingface_hub`` (so ``HF_HOME``, ``HF_HUB_CACHE`` and
  ``HF_HUB_OFFLINE`` apply): the weights of ``timm/<name>`` models with ``pretrained: true`` (their
  ``hf_hub_id``, handed to timm by :mod:`clsctl.models.timm_models`) and the files of ``hf-hub:`` models;
* ``hf-hub:<org>/<repo>[@revision]`` names are parsed here and built by :mod:`clsctl.models.hub_models`. A
  repository whose ``config.json`` has ``"library_name": "clsctl"`` is a clsctl model: ``model.safetensors``
  (the weights) and ``config.json``::

      {"library_name": "clsctl", "format": "clsctl-model", "version": 1,
       "model_name": "resnet20_cifar", "num_classes": 10, "class_names": [...],
       "preprocessing": {"pipeline": [...], "mean": [...], "std": [...], ...},
       "recipe": {...the resolved training recipe...}, "deploy": false, "fused_conv_bn": false}

  ``clsctl export CKPT -f safetensors -o FOLDER`` writes exactly that folder (:func:`write_model_folder`). Any
  other repository is handed to timm (``timm.create_model("hf-hub:...")``), which reads timm's own
  ``config.json`` layout.

Failures (offline without the file in the cache, unknown repository) become one :class:`ClsctlError` line
naming the repository and the cache folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

from clsctl.errors import CheckpointError, ClsctlError

logger = logging.getLogger("clsctl")

PREFIX = "hf-hub:"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
LIBRARY_NAME = "clsctl"
MODEL_FORMAT = "clsctl-model"


def is_hf_hub_name(name: str) -> bool:
    """Whether ``name`` names a Hub repository (``hf-hub:org/repo``)."""
    return name.strip().lower().startswith(PREFIX)


def import_huggingface_hub() -> ModuleType:
    try:
        import huggingface_hub
    except ImportError as exc:
        raise ClsctlError("Hugging Face Hub models need huggingface_hub: pip install 'clsctl[hf]'") from exc
    return huggingface_hub


def cache_dir() -> str:
    """The folder huggingface_hub keeps downloads in (``HF_HUB_CACHE``, else ``HF_HOME/hub``)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def split_repo(name: str) -> tuple[str, str | None]:
    """``hf-hub:org/repo@rev`` -> ``("org/repo", "rev")``; the revision is None when not given."""
    repo = name.strip()[len(PREFIX):] if is_hf_hub_name(name) else name.strip()
    repo, _, revision = repo.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ClsctlError(f"'{name}' is not a Hub model name; expected hf-hub:<org>/<repo>")
    return repo, revision or None


def hub_file(repo_id: str, filename: str, revision: str | None = None) -> Path:
    """The local path of ``filename`` of a Hub repository, downloaded into the cache unless it is there.

    Raises:
        ClsctlError: The file cannot be had (offline and not cached, no such repository or file): one line
            naming the repository, the file and the cache.
    """
    hub = import_huggingface_hub()
    from huggingface_hub import errors

    try:
        return Path(hub.hf_hub_download(repo_id, filename, revision=revision))
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled) as exc:
        raise ClsctlError(
            f"'{filename}' of Hugging Face Hub repo '{repo_id}' is not in the cache {cache_dir()} and cannot be "
            f"downloaded here ({first_line(exc)}); fetch it once with internet access "
            f"(hf download {repo_id}) and copy that cache over, or point HF_HUB_CACHE at one that has it") from exc
    except (errors.EntryNotFoundError, errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as exc:
        raise ClsctlError(f"Hugging Face Hub repo '{repo_id}' has no '{filename}'"
                          f"{f' at revision {revision}' if revision else ''} ({first_line(exc)})") from exc
    except (errors.HfHubHTTPError, OSError) as exc:
        raise ClsctlError(f"could not fetch '{filename}' of Hugging Face Hub repo '{repo_id}' "
                          f"({first_line(exc)}); cache: {cache_dir()}") from exc


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def repo_config(name: str) -> dict[str, Any]:
    """The parsed ``config.json`` of a Hub model."""
    repo, revision = split_repo(name)
    path = hub_file(repo, CONFIG_NAME, revision)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{CONFIG_NAME} of Hugging Face Hub repo '{repo}' is not JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{CONFIG_NAME} of Hugging Face Hub repo '{repo}' is not a JSON object")
    return config


def is_clsctl_config(config: dict[str, Any]) -> bool:
    """Whether a repository's ``config.json`` describes a clsctl model (else timm's layout is assumed)."""
    return config.get("library_name") == LIBRARY_NAME or config.get("format") == MODEL_FORMAT


# --------------------------------------------------------------------------- timm/<name> pretrained weights


def timm_pretrained_file(hf_hub_id: str, filename: str | None = None) -> Path:
    """The weights file of a timm pretrained config on the Hub (``model.safetensors``, else the older
    ``pytorch_model.bin``), through the cache."""
    repo, _, revision = hf_hub_id.partition("@")
    if filename:
        return hub_file(repo, filename, revision or None)
    try:
        return hub_file(repo, WEIGHTS_NAME, revision or None)
    except ClsctlError as safetensors_error:
        try:
            return hub_file(repo, "pytorch_model.bin", revision or None)
        except ClsctlError:
            raise safetensors_error from None


# --------------------------------------------------------------------------- clsctl models on the Hub


def model_config(*, model_name: str, class_names: list[str], preprocessing: dict[str, Any], recipe: dict[str, Any],
                 deploy: bool = False, fused_conv_bn: bool = False) -> dict[str, Any]:
    """The ``config.json`` of a clsctl Hub model (the layout in this module's docstring), from plain data.

    Args:
        model_name: The registered variant the model was trained from.
        class_names: Class names, in output order.
        preprocessing: The checkpoint's preprocessing (eval pipeline, mean, std, input size).
        recipe: The resolved training recipe as plain data (``Recipe.to_dict()``).
        deploy: The weights are of the deploy (re-parameterised) form.
        fused_conv_bn: That deploy form has its conv-BN pairs fused.
    """
    from clsctl import __version__

    return {
        "library_name": LIBRARY_NAME,
        "format": MODEL_FORMAT,
        "version": 1,
        "model_name": model_name,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "preprocessing": preprocessing,
        "recipe": recipe,
        "deploy": bool(deploy),
        "fused_conv_bn": bool(fused_conv_bn),
        "producer": f"clsctl {__version__}",
    }


def write_model_folder(folder: str | Path, state_dict: dict[str, Any], config: dict[str, Any],
                       metadata: dict[str, str] | None = None) -> Path:
    """Write ``folder/model.safetensors`` and ``folder/config.json``: a repository ready to upload.

    Args:
        folder: Folder to write (created if needed).
        state_dict: The model's weights.
        config: Its :func:`model_config`.
        metadata: String metadata stored in the safetensors header.

    Returns:
        The weights file.
    """
    from clsctl.models.safetensors_io import write_safetensors

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = write_safetensors(state_dict, folder / WEIGHTS_NAME, metadata)
    from clsctl.atomic import write_text_atomic

    write_text_atomic(folder / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    return weights
