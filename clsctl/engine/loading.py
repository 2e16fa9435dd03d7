"""One way to get a model ready for use: :func:`load_model` -> :class:`LoadedModel` (network, class names,
preprocessing, multi-label flag, origin), for every command and library function that uses a trained model.

A source is one of:

- a clsctl checkpoint (``train`` writes it: recipe, class names and preprocessing are inside);
- a clsctl safetensors export (``clsctl export -f safetensors``: the same three in its header), or a folder
  holding ``model.safetensors`` and ``config.json`` (the Hub layout);
- an exported model: ONNX (``.onnx``), TorchScript (``.torchscript.pt``), ``torch.export`` / AOTInductor
  packages (``.pt2``) and OpenVINO IR (``.xml``), run by their runtimes (:mod:`clsctl.engine.runtimes`), with
  the class names and preprocessing stored in them;
- a registered model name (``resnet50``, ``timm/<name>``, ``hf-hub:<repo>``) with ``pretrained`` or
  ``weights``: ImageNet-1k class names for 1000-way ImageNet variants, else ``class_<i>``, and the published
  weights' evaluation transform (:meth:`Preprocessing.from_meta`). A clsctl checkpoint or safetensors export
  given as ``weights`` brings its own class names and preprocessing (its architecture must be the named one);
- a recipe (YAML file or :class:`~clsctl.recipe.schema.Recipe`): its model and evaluation preprocessing (what a
  checkpoint of it would carry).

Recipes embedded in checkpoints and exports are validated as untrusted input: nothing they name is run.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from clsctl.data.preprocessing import Preprocessing
from clsctl.errors import CheckpointError, ClsctlError, RecipeError

logger = logging.getLogger("clsctl")

DEFAULT_MODEL = "resnet50"
"""The model used, with its published ImageNet weights, when neither a checkpoint nor a model name is given."""
RECIPE_SUFFIXES = (".yaml", ".yml")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
EXPORT_SUFFIXES = {".onnx": "onnx", ".pt2": "pt2", ".xml": "openvino", ".safetensors": "safetensors"}
SourceKind = Literal["auto", "checkpoint", "safetensors", "model", "recipe", "onnx", "torchscript", "pt2",
                     "openvino"]
PYTORCH_KINDS = ("checkpoint", "safetensors", "model", "recipe")
CHECKPOINT_FACTS = ("epoch", "deploy", "fused_conv_bn", "ema_weights", "metrics", "best_metric")


@dataclass(frozen=True)
class ModelOrigin:
    """Where a loaded model came from.

    Attributes:
        kind: ``checkpoint``, ``safetensors``, ``model``, ``recipe``, ``onnx``, ``torchscript``, ``pt2`` or
            ``openvino``.
        source: The path or name that was given.
        model_name: The registered architecture (empty for an export that does not record it).
        weights: The weights loaded into a named model: a file, ``pretrained`` (published weights), or None.
    """

    kind: str
    source: str
    model_name: str
    weights: str | None = None

    def describe(self) -> str:
        """``checkpoint runs/q3/best.pt (resnet18)``, ``model resnet50 (pretrained)``, ..."""
        extra = self.model_name if self.kind != "model" else (self.weights or "random weights")
        return f"{self.kind} {self.source}" + (f" ({extra})" if extra else "")


@dataclass
class LoadedModel:
    """A model ready for use.

    Attributes:
        module: The network in eval mode on ``device`` (for an export, a module that runs its runtime).
        class_names: One name per output.
        preprocessing: How an image becomes its input.
        origin: Where it came from.
        multi_label: Whether its scores are independent per class (sigmoid) rather than one softmax.
        device: Where ``module`` runs.
        recipe: The recipe it was trained with (checkpoints, clsctl exports) or built from; None otherwise.
        info: Facts a checkpoint records (``epoch``, ``deploy``, ``fused_conv_bn``, ``ema_weights``,
            ``metrics``, ``best_metric``), for reports.
    """

    module: nn.Module
    class_names: list[str]
    preprocessing: Preprocessing
    origin: ModelOrigin
    multi_label: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    recipe: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        """The registered architecture, or the file name of an export that does not record one."""
        return self.origin.model_name or Path(self.origin.source).name

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` the model takes."""
        return self.preprocessing.input_size

    @property
    def is_pytorch(self) -> bool:
        """Whether ``module`` is the PyTorch network itself (CAM, FLOPs, export and training need that), not a
        runtime running an exported file."""
        return self.origin.kind in PYTORCH_KINDS

    def require_pytorch(self, what: str) -> nn.Module:
        """``module``, when it is a PyTorch network.

        Raises:
            ClsctlError: The model is an export run by another runtime, naming ``what`` needs PyTorch.
        """
        if not self.is_pytorch:
            raise ClsctlError(f"{what} needs the PyTorch model; {self.origin.source} is a {self.origin.kind} "
                              f"export (use the checkpoint it was exported from)")
        return self.module

    def with_overrides(self, assignments: list[str] | tuple[str, ...]) -> tuple[LoadedModel, list[str]]:
        """A copy whose preprocessing has the ``--set`` assignments it holds applied, and the rest, in order
        (see :meth:`Preprocessing.with_overrides`)."""
        prep, rest = self.preprocessing.with_overrides(list(assignments))
        return replace(self, preprocessing=prep), rest


def refuse_other_overrides(rest: list[str], command: str) -> None:
    """Stop a command that uses a model but reads no dataset when ``--set`` keys remain that it cannot change.

    Raises:
        RecipeError: Naming the first such key.
    """
    if rest:
        key = rest[0].split("=", 1)[0].strip()
        raise RecipeError(f"--set {key}: {command} cannot change this key; it changes only the preprocessing "
                          f"(data.mean, data.std, data.channel_order, data.<split>.pipeline..., "
                          f"preprocessing.resize/crop/crop_pct/interpolation/mean/std/channel_order)")


# --------------------------------------------------------------------------- what a source is


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files holding ``<name>/code/``; torch.load of one only warns and fails."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def source_kind(source: Any) -> str:
    """What a source is: ``recipe`` for a Recipe or a ``.yaml``/``.yml`` path; an export kind by suffix
    (``.onnx``, ``.pt2``, ``.xml``, ``.safetensors``) or content (TorchScript archives); ``safetensors`` for a
    folder with ``model.safetensors``; ``checkpoint`` for another existing path or a checkpoint suffix; else
    ``model`` (a registered name)."""
    if not isinstance(source, (str, Path)):
        return "recipe"
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix in RECIPE_SUFFIXES:
        return "recipe"
    if suffix in EXPORT_SUFFIXES:
        return EXPORT_SUFFIXES[suffix]
    if path.is_dir() and (path / "model.safetensors").is_file():
        return "safetensors"
    if path.is_file() and _is_torchscript(path):
        return "torchscript"
    if path.exists() or suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    return "model"


# --------------------------------------------------------------------------- the loader


def load_model(source: Any, *, weights: str | Path | None = None, pretrained: bool = False,
               num_classes: int | None = None, kind: SourceKind = "auto", overrides: tuple[str, ...] = (),
               load_weights: bool = True, seed: int | None = None,
               device: str | torch.device | None = "cpu") -> LoadedModel:
    """The model of a checkpoint, export, registered name or recipe, in eval mode, with class names and
    preprocessing (see the module docstring for the sources).

    Args:
        source: Checkpoint or export path, registered model name, recipe YAML path or Recipe.
        weights: Weights file for a model name (state dict, clsctl checkpoint or safetensors export).
        pretrained: Published weights for a model name.
        num_classes: Classifier size for a model name or recipe (default: the variant's; for a recipe its
            ``model.num_classes``, else its train dataset's class count when that can be scanned).
        kind: What ``source`` is; ``auto``: :func:`source_kind` decides.
        overrides: ``path.to.key=value`` changes to a recipe YAML source.
        load_weights: For a recipe: load the weights it names (``pretrained``, ``weights``, ``init``).
        seed: Seed of a random initialisation (the global generator is left as it was); None: not seeded.
        device: ``cpu``, ``cuda``, ``cuda:N``, ``auto`` (None means ``auto``).

    Raises:
        ClsctlError: An unreadable file, an unknown model name (with suggestions), weights options with a file
            that carries its own weights, weights whose architecture is not the named one.
    """
    from clsctl.engine.build import resolve_device

    kind = source_kind(source) if kind == "auto" else kind
    if kind not in ("model", "recipe") and (weights is not None or pretrained or num_classes is not None):
        raise ClsctlError(f"--weights, --pretrained and --num-classes go with a model name, not a {kind} file")
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        loaded = _load(source, kind, weights, pretrained, num_classes, overrides, load_weights, dev)
    loaded.module = loaded.module.to(dev).eval()
    loaded.device = dev
    return loaded


def _load(source: Any, kind: str, weights: str | Path | None, pretrained: bool, num_classes: int | None,
          overrides: tuple[str, ...], load_weights: bool, device: torch.device) -> LoadedModel:
    if kind == "checkpoint":
        return load_checkpoint_model(Path(source))
    if kind == "safetensors":
        return _from_safetensors(Path(source))
    if kind == "recipe":
        return _from_recipe(source, overrides, num_classes, load_weights)
    if kind == "model":
        return _from_name(str(source), weights, pretrained, num_classes)
    from clsctl.engine.runtimes import open_export

    module, names, prep, facts = open_export(Path(source), kind, device)
    origin = ModelOrigin(kind, str(source), str(facts.pop("model_name", "")))
    return LoadedModel(module, names, prep, origin, multi_label=bool(facts.get("multi_label")), info=facts)


def _embedded_recipe(data: Any, source: str) -> Any:
    """A recipe read from a file clsctl did not just write (checkpoint, export): validated as untrusted."""
    from clsctl.recipe import validate_recipe

    if not isinstance(data, dict):
        raise CheckpointError(f"{source}: its embedded recipe is not a mapping")
    return validate_recipe(data, source=f"{source} (embedded recipe)")


def rebuild(recipe: Any, class_names: list[str], state: dict[str, torch.Tensor], *, source: str,
            deploy: bool = False, fused_conv_bn: bool = False) -> nn.Module:
    """The network a recipe trained, in its deploy form if so saved, with ``state`` loaded strictly."""
    from clsctl.engine.build import build_model
    from clsctl.models.weights import load_state_dict_checked

    model = build_model(recipe, len(class_names), load_weights=False)
    if deploy:
        from clsctl.models.reparam import to_deploy  # only deploy-form checkpoints need this

        to_deploy(model, fuse_conv_bn=fused_conv_bn)
    load_state_dict_checked(model, state, source=source, allow_head_mismatch=False)
    return model


def _trained(recipe: Any, classes: list[str], prep: Preprocessing, origin: ModelOrigin, model: nn.Module,
             info: dict[str, Any]) -> LoadedModel:
    from clsctl.engine.build import is_multi_label_recipe

    return LoadedModel(model, classes, prep, origin, multi_label=is_multi_label_recipe(recipe), recipe=recipe,
                       info=info)


def load_checkpoint_model(path: str | Path, ckpt: dict[str, Any] | None = None) -> LoadedModel:
    """The model of a clsctl checkpoint (what :func:`load_model` does for one), from its already read contents
    ``ckpt`` when given (``reparameterize`` keeps them to write the deploy checkpoint).

    Raises:
        CheckpointError: As :func:`clsctl.readers.read_checkpoint`, or weights that do not fit the recipe.
    """
    from clsctl.readers import read_checkpoint

    path = Path(path)
    ckpt = read_checkpoint(path) if ckpt is None else ckpt
    recipe = _embedded_recipe(ckpt["recipe"], str(path))
    classes = [str(name) for name in ckpt["class_names"]]
    prep = Preprocessing.from_dict(ckpt["preprocessing"], str(path))
    model = rebuild(recipe, classes, ckpt["model"], source=str(path), deploy=bool(ckpt.get("deploy")),
                    fused_conv_bn=bool(ckpt.get("fused_conv_bn")))
    info = {key: ckpt.get(key) for key in CHECKPOINT_FACTS}
    return _trained(recipe, classes, prep, ModelOrigin("checkpoint", str(path), recipe.model.name), model, info)


def _from_safetensors(path: Path) -> LoadedModel:
    from clsctl.models.safetensors_io import FORMAT, decoded_metadata, read_safetensors

    file = path / "model.safetensors" if path.is_dir() else path
    tensors, raw = read_safetensors(file)
    if raw.get("format") != FORMAT:
        raise CheckpointError(f"{file} holds weights without clsctl's metadata (class names, preprocessing, "
                              f"recipe): use it with --model NAME --weights {file}")
    meta = decoded_metadata(raw)
    try:
        recipe = _embedded_recipe(meta["recipe"], str(file))
        classes = [str(name) for name in meta["class_names"]]
        prep = Preprocessing.from_dict(meta["preprocessing"], str(file))
    except KeyError as exc:
        raise CheckpointError(f"{file}: its clsctl metadata lacks {exc}") from None
    deploy, fused = bool(meta.get("deploy")), bool(meta.get("fused_conv_bn"))
    model = rebuild(recipe, classes, tensors, source=str(file), deploy=deploy, fused_conv_bn=fused)
    info = {"deploy": deploy, "fused_conv_bn": fused}
    return _trained(recipe, classes, prep, ModelOrigin("safetensors", str(path), recipe.model.name), model, info)


def _clsctl_weights(path: Path) -> LoadedModel | None:
    """``path`` loaded as a model when it is a clsctl checkpoint or safetensors export, else None (a plain
    weights file). The file is read once either way."""
    from clsctl.models.safetensors_io import FORMAT, is_safetensors, read_safetensors_metadata
    from clsctl.readers import CHECKPOINT_FORMAT, check_file, load_torch_file

    check_file(path, "weights file", CheckpointError)
    if is_safetensors(path):
        return _from_safetensors(path) if read_safetensors_metadata(path).get("format") == FORMAT else None
    data = load_torch_file(path, "weights file")
    if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT:
        from clsctl.readers import read_checkpoint_data

        return load_checkpoint_model(path, read_checkpoint_data(data, path))
    return None


def _from_name(name: str, weights: str | Path | None, pretrained: bool, num_classes: int | None) -> LoadedModel:
    from clsctl.models import create_model, model_info

    meta = model_info(name)  # unknown names raise with suggestions
    if weights is not None and not pretrained:
        trained = _clsctl_weights(Path(weights))
        if trained is not None:
            return _named_trained(meta, trained, Path(weights), num_classes)
    model = create_model(name, pretrained=pretrained, num_classes=num_classes, weights=weights)
    count = model.model_meta.num_classes
    origin = ModelOrigin("model", name, meta.name, str(weights) if weights is not None else
                         ("pretrained" if pretrained else None))
    published = list(meta.weights.class_list) if meta.weights else []  # a clsctl model from the Hugging Face Hub
    stored = meta.hub.preprocessing if meta.hub else None
    if stored and len(published) == count:
        return LoadedModel(model, published, Preprocessing.from_dict(dict(stored), name), origin)
    return LoadedModel(model, named_class_names(meta, count), Preprocessing.from_meta(meta), origin)


def _named_trained(meta: Any, trained: LoadedModel, weights: Path, num_classes: int | None) -> LoadedModel:
    """A named model whose ``--weights`` is a clsctl file: its classes and preprocessing are kept."""
    from clsctl.models import model_info

    if model_info(trained.model_name).name != meta.name:
        raise ClsctlError(f"--weights {weights} holds a {trained.model_name} model, not {meta.name}; drop "
                          f"--model (the file names its own architecture) or name {trained.model_name}")
    if num_classes is not None and num_classes != len(trained.class_names):
        raise ClsctlError(f"--num-classes {num_classes}, but --weights {weights} has {len(trained.class_names)} "
                          f"classes; drop --num-classes")
    logger.info("--weights %s is a clsctl %s: its %d class names and preprocessing (%s) are used", weights,
                trained.origin.kind, len(trained.class_names), trained.preprocessing.describe())
    trained.origin = ModelOrigin(trained.origin.kind, trained.origin.source, meta.name, str(weights))
    return trained


def named_class_names(meta: Any, count: int) -> list[str]:
    """Class names of a registered model with ``count`` outputs: ImageNet-1k's for a 1000-way ImageNet variant,
    else ``class_<i>``."""
    if meta.class_names == "imagenet-1k" and count == 1000:
        from clsctl.data.imagenet_classes import imagenet_class_names

        return imagenet_class_names()
    return [f"class_{i}" for i in range(count)]


def _from_recipe(source: Any, overrides: tuple[str, ...], num_classes: int | None,
                 load_weights: bool) -> LoadedModel:
    from clsctl.engine.build import build_model

    recipe = source
    if isinstance(source, (str, Path)):
        from clsctl.recipe import load_recipe

        recipe = load_recipe(Path(source), overrides)
    names = None
    if num_classes is None and recipe.model.num_classes is None:
        names = _train_classes(recipe)
    count = num_classes or recipe.model.num_classes or (len(names) if names else None)
    if count is None:
        from clsctl.models import model_info

        count = model_info(recipe.model.name).num_classes
    model = build_model(recipe, count, load_weights=load_weights)
    origin = ModelOrigin("recipe", str(source) if isinstance(source, (str, Path)) else "recipe", recipe.model.name)
    return _trained(recipe, names or [f"class_{i}" for i in range(count)], Preprocessing.from_recipe(recipe),
                    origin, model, {})


def _train_classes(recipe: Any) -> list[str] | None:
    """The train dataset's classes when it can be scanned, else None."""
    try:
        from clsctl.data.datasets import build_dataset
        from clsctl.engine.build import dataset_config

        return list(build_dataset(dataset_config(recipe, "train")).classes)
    except ClsctlError:
        return None


# --------------------------------------------------------------------------- commands' --checkpoint/--model flags


def choose_model(checkpoint: str | Path | None, model: str | None, weights: str | Path | None,
                 pretrained: bool) -> tuple[str | None, bool]:
    """The model name and whether to load its published weights, for commands that take a checkpoint or a model.

    Neither given: :data:`DEFAULT_MODEL` with its ImageNet weights (through torch.hub's cache), logged. A model
    without ``weights`` or ``pretrained`` is used as asked, with a warning that its weights are random.

    Raises:
        ClsctlError: Both a checkpoint and a model, or weights/pretrained with a checkpoint, or weights without
            a model.
    """
    if checkpoint is not None:
        if model is not None:
            raise ClsctlError("give --checkpoint or --model, not both")
        if weights is not None or pretrained:
            raise ClsctlError("--weights and --pretrained go with --model, not --checkpoint")
        return None, False
    if model is None:
        if weights is not None:
            raise ClsctlError("--weights needs --model NAME (the architecture the weights are for)")
        from clsctl.models import model_info
        from clsctl.models.weights import hub_cache_path

        url = model_info(DEFAULT_MODEL).pretrained_url
        logger.info("no --checkpoint or --model: using %s with its ImageNet weights (%s, cached at %s)",
                    DEFAULT_MODEL, url, hub_cache_path(url) if url else "-")
        return DEFAULT_MODEL, True
    from clsctl.models import random_weights_warning

    warning = random_weights_warning(model, weights=weights, pretrained=pretrained)
    if warning is not None:
        logger.warning(warning)
    return model, pretrained


def load_from_options(*, checkpoint: str | Path | None = None, model: str | None = None,
                      weights: str | Path | None = None, pretrained: bool = False, num_classes: int | None = None,
                      device: str | torch.device | None = "cpu") -> LoadedModel:
    """:func:`load_model` for commands with ``--checkpoint``/``--model``/``--weights``/``--pretrained`` flags
    (see :func:`choose_model`: neither: :data:`DEFAULT_MODEL` with its ImageNet weights)."""
    name, pretrained = choose_model(checkpoint, model, weights, pretrained)
    if checkpoint is not None:
        if num_classes is not None:
            raise ClsctlError("--num-classes goes with --model, not --checkpoint")
        return load_model(checkpoint, device=device)
    return load_model(name, kind="model", weights=weights, pretrained=pretrained, num_classes=num_classes,
                      device=device)
