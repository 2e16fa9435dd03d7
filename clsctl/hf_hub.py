"""Hugging Face Hub: weights through ``huggingface_hub``'s cache, and models named ``hf-hub:<org>/<repo>``.

Two things live here:

* the weights of ``timm/<name>`` models with ``pretrained: true``: their ``hf_hub_id`` file is fetched through
  ``huggingface_hub`` (so ``HF_HOME``, ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` apply) and handed to timm;
* ``hf-hub:<org>/<repo>[@revision]`` model names. A repository whose ``config.json`` has
  ``"library_name": "clsctl"`` is a clsctl model: ``model.safetensors`` (the weights) and ``config.json``::

      {"library_name": "clsctl", "format": "clsctl-model", "version": 1,
       "model_name": "resnet20_cifar", "num_classes": 10, "class_names": [...],
       "preprocessing": {"pipeline": [...], "mean": [...], "std": [...], ...},
       "recipe": {...the resolved training recipe...}, "deploy": false, "fused_conv_bn": false}

  ``clsctl export CKPT -f safetensors -o FOLDER`` writes exactly that folder. Any other repository is handed
  to timm (``timm.create_model("hf-hub:...")``), which reads timm's own ``config.json`` layout.

Failures (offline without the file in the cache, unknown repository) become one :class:`ClsctlError` line
naming the repository and the cache folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from clsctl.errors import CheckpointError, ClsctlError
from clsctl.models._meta import (IMAGENET_MEAN, IMAGENET_STD, NUMBERED_BLOCKS, HubOrigin, ModelLayout, ModelMeta,
                                 PretrainedWeights)

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger("clsctl")

PREFIX = "hf-hub:"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
LIBRARY_NAME = "clsctl"
MODEL_FORMAT = "clsctl-model"


def is_hf_hub_name(name: str) -> bool:
    """Whether ``name`` names a Hub repository (``hf-hub:org/repo``)."""
    return name.strip().lower().startswith(PREFIX)


def _huggingface_hub() -> ModuleType:
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
    hub = _huggingface_hub()
    from huggingface_hub import errors

    try:
        return Path(hub.hf_hub_download(repo_id, filename, revision=revision))
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled) as exc:
        raise ClsctlError(
            f"'{filename}' of Hugging Face Hub repo '{repo_id}' is not in the cache {cache_dir()} and cannot be "
            f"downloaded here ({_first_line(exc)}); fetch it once with internet access "
            f"(hf download {repo_id}) and copy that cache over, or point HF_HUB_CACHE at one that has it") from exc
    except (errors.EntryNotFoundError, errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as exc:
        raise ClsctlError(f"Hugging Face Hub repo '{repo_id}' has no '{filename}'"
                          f"{f' at revision {revision}' if revision else ''} ({_first_line(exc)})") from exc
    except (errors.HfHubHTTPError, OSError) as exc:
        raise ClsctlError(f"could not fetch '{filename}' of Hugging Face Hub repo '{repo_id}' "
                          f"({_first_line(exc)}); cache: {cache_dir()}") from exc


def _first_line(exc: BaseException) -> str:
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


def model_config(loaded: Any) -> dict[str, Any]:
    """The ``config.json`` of a clsctl Hub model made from a loaded checkpoint.

    Args:
        loaded: A :class:`clsctl.engine.build.LoadedModel`.
    """
    from clsctl import __version__

    return {
        "library_name": LIBRARY_NAME,
        "format": MODEL_FORMAT,
        "version": 1,
        "model_name": loaded.recipe.model.name,
        "num_classes": len(loaded.class_names),
        "class_names": list(loaded.class_names),
        "preprocessing": loaded.preprocessing,
        "recipe": loaded.recipe.to_dict(),
        "deploy": bool(loaded.checkpoint.get("deploy")),
        "fused_conv_bn": bool(loaded.checkpoint.get("fused_conv_bn")),
        "producer": f"clsctl {__version__}",
    }


def write_model_folder(loaded: Any, folder: str | Path) -> Path:
    """Write ``folder/model.safetensors`` and ``folder/config.json``: a repository ready to upload.

    Returns:
        The weights file.
    """
    from clsctl.models.safetensors_io import checkpoint_metadata, write_safetensors

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = write_safetensors(loaded.model.state_dict(), folder / WEIGHTS_NAME, checkpoint_metadata(loaded))
    (folder / CONFIG_NAME).write_text(json.dumps(model_config(loaded), indent=2) + "\n", encoding="utf-8")
    return weights


def _clsctl_layout(model_name: Any) -> ModelLayout:
    """The layout of the registered variant a clsctl Hub model was trained from (defaults when unknown)."""
    from clsctl.models import MODELS

    try:
        return MODELS.get(str(model_name)).meta.layout
    except (KeyError, ClsctlError):
        return ModelLayout()


def hub_model_meta(name: str) -> ModelMeta:
    """Metadata of a Hub model from its ``config.json`` (input size, normalisation, classes)."""
    config = repo_config(name)
    repo = split_repo(name)[0]
    if is_clsctl_config(config):
        prep = config.get("preprocessing") or {}
        size = prep.get("input_size") or (224, 224)
        class_list = tuple(config.get("class_names") or [])
        return ModelMeta(name=name, family="hf-hub", input_size=(int(size[0]), int(size[1])),
                         mean=tuple(prep.get("mean", IMAGENET_MEAN)), std=tuple(prep.get("std", IMAGENET_STD)),
                         num_classes=int(config.get("num_classes") or len(class_list) or 1000),
                         param_source="hf-hub (not recorded)",
                         weights=PretrainedWeights(url=f"{PREFIX}{repo}", source="hf-hub", class_list=class_list),
                         layout=_clsctl_layout(config.get("model_name")),
                         hub=HubOrigin(repo=repo, library=LIBRARY_NAME, model_name=config.get("model_name"),
                                       preprocessing=prep))
    cfg = dict(config.get("pretrained_cfg") or {})
    size = tuple(cfg.get("input_size", (3, 224, 224)))[-2:]
    num_classes = int(config.get("num_classes") or cfg.get("num_classes") or 1000)
    return ModelMeta(name=name, family="hf-hub", input_size=(int(size[0]), int(size[1])),
                     mean=tuple(cfg.get("mean", IMAGENET_MEAN)), std=tuple(cfg.get("std", IMAGENET_STD)),
                     num_classes=num_classes, param_source="hf-hub (not recorded)",
                     weights=PretrainedWeights(url=f"{PREFIX}{repo}", source="hf-hub",
                                               class_names="imagenet-1k" if num_classes == 1000 else None),
                     layout=ModelLayout(classifier=cfg.get("classifier", "fc"), layer_groups=NUMBERED_BLOCKS),
                     hub=HubOrigin(repo=repo, library="timm", model_name=config.get("architecture")))


def create_hub_model(name: str, pretrained: bool = False, num_classes: int | None = None, *,
                     weights: str | Path | None = None, **kwargs: Any) -> nn.Module:
    """Build the model of a Hub repository; with ``pretrained`` its published weights are loaded.

    Args:
        name: ``hf-hub:<org>/<repo>[@revision]``.
        pretrained: Load the repository's weights.
        num_classes: Classifier size; a head of another size than the weights' is re-initialised.
        weights: Local weights file loaded afterwards.
        **kwargs: Family options (clsctl models: merged into the published recipe's ``model.kwargs``; timm
            models: passed to ``timm.create_model``).
    """
    from dataclasses import replace

    from clsctl.models.weights import load_state_dict_checked, load_weights_file

    meta = hub_model_meta(name)
    repo, revision = split_repo(name)
    classes = num_classes if num_classes is not None else meta.num_classes
    if meta.hub is not None and meta.hub.library == LIBRARY_NAME:
        from clsctl.engine.build import build_model
        from clsctl.recipe import validate_recipe

        config = repo_config(name)
        recipe_dict = dict(config["recipe"])
        model_section = {**recipe_dict["model"], "num_classes": None, "pretrained": False, "weights": None,
                         "init": None}
        model_section["kwargs"] = {**model_section.get("kwargs", {}), **kwargs}
        recipe = validate_recipe({**recipe_dict, "model": model_section}, source=f"{repo} {CONFIG_NAME}")
        model = build_model(recipe, classes, load_weights=False)
        if config.get("deploy"):
            from clsctl.models.reparam import to_deploy

            to_deploy(model, fuse_conv_bn=bool(config.get("fused_conv_bn")))
        if pretrained:
            from clsctl.models.safetensors_io import read_safetensors

            state, _ = read_safetensors(hub_file(repo, WEIGHTS_NAME, revision))
            load_state_dict_checked(model, state, source=f"{PREFIX}{repo}")
    else:
        from clsctl.models.timm_models import _timm

        try:
            model = _timm().create_model(f"hf-hub:{repo}{'@' + revision if revision else ''}", pretrained=pretrained,
                                         num_classes=classes, **kwargs)
        except ClsctlError:
            raise
        except (OSError, ValueError, RuntimeError) as exc:
            hub_errors = _huggingface_hub().errors
            if isinstance(exc, (hub_errors.LocalEntryNotFoundError, hub_errors.OfflineModeIsEnabled)):
                raise ClsctlError(f"timm model of Hugging Face Hub repo '{repo}' is not in the cache {cache_dir()} "
                                  f"and cannot be downloaded here ({_first_line(exc)})") from exc
            raise ClsctlError(f"timm cannot build Hugging Face Hub model '{repo}': {_first_line(exc)}") from exc
    model.model_meta = replace(meta, num_classes=classes, num_params=sum(p.numel() for p in model.parameters()),
                               param_source="hf-hub (counted)")
    if weights is not None:
        load_weights_file(model, weights)
    return model
