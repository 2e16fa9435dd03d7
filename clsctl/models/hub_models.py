"""``hf-hub:<org>/<repo>[@revision]`` model names: models published on the Hugging Face Hub.

The repository's files come through :mod:`clsctl.hf_hub` (huggingface_hub's cache). A repository whose
``config.json`` says it is a clsctl model (layout in :mod:`clsctl.hf_hub`) is rebuilt from the plain data of
its stored recipe's ``model`` section: the registered variant with its ``kwargs``, then the neck and head
(:func:`~clsctl.models.heads.parse_neck`), then the deploy form; any other repository is handed to
timm (``timm.create_model("hf-hub:...")``), which reads timm's own ``config.json`` layout.

Importing this module registers the ``hf-hub:`` prefix with :func:`clsctl.models.create_model` and
:func:`clsctl.models.model_info`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clsctl.errors import CheckpointError, ClsctlError, RecipeError
from clsctl.hf_hub import (CONFIG_NAME, LIBRARY_NAME, PREFIX, WEIGHTS_NAME, cache_dir, first_line,
                           hub_file, import_huggingface_hub, is_clsctl_config, repo_config, split_repo)
from clsctl.models._factory import MODELS, create_model, register_prefix
from clsctl.models._meta import (IMAGENET_MEAN, IMAGENET_STD, NUMBERED_BLOCKS, HubOrigin, ModelLayout, ModelMeta,
                                 PretrainedWeights)

if TYPE_CHECKING:
    from torch import nn


def _clsctl_layout(model_name: Any) -> ModelLayout:
    """The layout of the registered variant a clsctl Hub model was trained from (defaults when unknown)."""
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


def _recipe_model_section(config: dict[str, Any], repo: str) -> dict[str, Any]:
    """The ``model`` section of the recipe stored in a clsctl Hub model's ``config.json``."""
    recipe = config.get("recipe")
    section = recipe.get("model") if isinstance(recipe, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("name"), str):
        raise CheckpointError(f"{CONFIG_NAME} of Hugging Face Hub repo '{repo}' has no recipe with a model.name")
    return section


def _build_clsctl_model(name: str, num_classes: int, pretrained: bool, **kwargs: Any) -> nn.Module:
    """A clsctl Hub model: its recipe's variant, neck and head (deploy form if published so), weights if asked."""
    from clsctl.models.heads import apply_neck_and_head, parse_head, parse_neck

    config = repo_config(name)
    repo, revision = split_repo(name)
    section = _recipe_model_section(config, repo)
    options = {**(section.get("kwargs") or {}), **kwargs}
    try:
        model = create_model(section["name"], num_classes=num_classes, **options)
    except (TypeError, ValueError) as exc:  # an option the family does not take, or a value out of range
        message = exc.message if isinstance(exc, ClsctlError) else str(exc)
        raise RecipeError(f"model.kwargs: {message}") from exc
    apply_neck_and_head(model, parse_neck(section.get("neck")), parse_head(section.get("head")),
                        num_classes)
    if config.get("deploy"):
        from clsctl.models.reparam import to_deploy

        to_deploy(model, fuse_conv_bn=bool(config.get("fused_conv_bn")))
    if pretrained:
        from clsctl.models.safetensors_io import read_safetensors
        from clsctl.models.weights import load_state_dict_checked

        state, _ = read_safetensors(hub_file(repo, WEIGHTS_NAME, revision))
        load_state_dict_checked(model, state, source=f"{PREFIX}{repo}")
    return model


def _build_timm_model(name: str, num_classes: int, pretrained: bool, **kwargs: Any) -> nn.Module:
    """A timm Hub model, built (and its weights fetched) by ``timm.create_model``."""
    from clsctl.models.timm_models import _timm

    repo, revision = split_repo(name)
    try:
        return _timm().create_model(f"hf-hub:{repo}{'@' + revision if revision else ''}", pretrained=pretrained,
                                    num_classes=num_classes, **kwargs)
    except ClsctlError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        hub_errors = import_huggingface_hub().errors
        if isinstance(exc, (hub_errors.LocalEntryNotFoundError, hub_errors.OfflineModeIsEnabled)):
            raise ClsctlError(f"timm model of Hugging Face Hub repo '{repo}' is not in the cache {cache_dir()} "
                              f"and cannot be downloaded here ({first_line(exc)})") from exc
        raise ClsctlError(f"timm cannot build Hugging Face Hub model '{repo}': {first_line(exc)}") from exc


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

    Returns:
        The model, with its :class:`ModelMeta` as ``model.model_meta``.
    """
    from clsctl.models.weights import load_weights_file

    meta = hub_model_meta(name)
    classes = num_classes if num_classes is not None else meta.num_classes
    clsctl_model = meta.hub is not None and meta.hub.library == LIBRARY_NAME
    build = _build_clsctl_model if clsctl_model else _build_timm_model
    model = build(name, classes, pretrained, **kwargs)
    model.model_meta = replace(meta, num_classes=classes, num_params=sum(p.numel() for p in model.parameters()),
                               param_source="hf-hub (counted)")
    if weights is not None:
        load_weights_file(model, weights)
    return model


register_prefix(PREFIX, create=create_hub_model, info=hub_model_meta)
