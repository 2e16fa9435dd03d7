"""Evaluation: the one forward loop (:func:`forward_pass`), ``clsctl test`` (:func:`evaluate`) and ``clsctl infer``
(:func:`predict`).

Every pass over images runs :func:`forward_pass`: training's validation, ``test``, ``infer``, ``report`` and
``dataset-doctor``. Images are decoded by the one decode layer, prepared by the model's
:class:`~clsctl.data.preprocessing.Preprocessing` as uint8 tensors in the loader workers, and normalised per
batch by its :class:`~clsctl.data.device.DeviceInput` on the model's device: the arithmetic training's
validation uses, so ``clsctl test`` of a checkpoint gives the val top-1 its training logged.

What :func:`evaluate` tests is a :class:`~clsctl.engine.loading.LoadedModel`: a checkpoint, an export, or a model
by name (registered or ``timm/<name>``) with ``pretrained`` or ``weights``. The dataset is the checkpoint
recipe's split, or ``data_root``; for a named model its class names are mapped onto the model's classes
(ImageNet-1k by WordNet id or name, see :mod:`clsctl.data.imagenet_classes`), and a dataset of a subset of a
trained model's classes is scored over the classes present. ``overrides`` (``--set``) change the preprocessing
(``data.mean``, ``data.<split>.pipeline.0.size``, ``preprocessing.crop_pct``, ...) or the dataset and loader
(``data.<split>.root``, ``data.loader.batch_size``); any other key is refused, naming it.

Under several processes (``clsctl test --gpus N``, torchrun or srun) each process evaluates whole batches of
the single-process pass (:class:`~clsctl.data.loaders.ShardedBatchSampler`, no padding), the per-sample
logits are gathered to rank 0 in dataset order, and rank 0 computes the metrics and writes the predictions:
the same numbers as one process, bit for bit on the CPU (where each process uses as many threads as one would).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from clsctl.data.dataset_base import ClassificationDataset
from clsctl.data.datasets import build_dataset, exclude_replaced_samples
from clsctl.engine import distributed as D
from clsctl.engine.loading import LoadedModel, load_model
from clsctl.engine.metrics import EvalOutput, confusion_matrix, evaluate_logits, precision_recall_f1
from clsctl.engine.progress import make_progress
from clsctl.engine.tta import TTA_MODES
from clsctl.errors import ClsctlError, DataError, RecipeError
from clsctl.recipe import schema as S

logger = logging.getLogger("clsctl")

IMAGENET_CLASSES = 1000
DATA_KEYS = ("loader", "on_bad_image", "max_image_pixels", "follow_symlinks")
"""``data.*`` keys besides the evaluated split's dataset entry that ``--set`` may change in an evaluation."""


class EvalLoader(Protocol):
    """What the forward loop needs from a loader: batches of ``(images, targets)`` and their count."""

    def __iter__(self) -> Iterator[tuple[Any, Any]]: ...

    def __len__(self) -> int: ...


class BatchInput(Protocol):
    """Turns a loader batch into the model's input on a device (:class:`~clsctl.data.device.DeviceInput`)."""

    def __call__(self, images: Any, targets: Any, device: torch.device, *, dtype: torch.dtype | None = None,
                 channels_last: bool = False) -> tuple[torch.Tensor, Any]: ...


# --------------------------------------------------------------------------- the forward loop


@torch.no_grad()
def forward_pass(model: nn.Module, loader: EvalLoader, device: torch.device, *, inputs: BatchInput | None = None,
                 autocast_dtype: torch.dtype | None = None, channels_last: bool = False, to_host: bool = True,
                 advance: Callable[[int], Any] | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The float32 logits and the targets of each batch of ``loader``, in loader order (``model`` in eval mode).

    Args:
        model: The classifier.
        loader: Yields ``(images, targets)``.
        device: Where ``model`` runs.
        inputs: Turns a loader batch into the model's input on ``device``; without it the images are copied
            as they are (already normalised).
        autocast_dtype: Autocast dtype; ``None`` runs in full precision.
        channels_last: channels_last inputs.
        to_host: Copy each batch's logits and targets to the host as it comes. Without it they stay where
            they are, for the caller to copy once (each copy from a GPU waits for its queue to drain).
        advance: Called with each batch's number of samples.
    """
    model.eval()
    logits_all, targets_all = [], []
    for images, targets in loader:
        if inputs is not None:
            images, targets = inputs(images, targets, device, dtype=autocast_dtype, channels_last=channels_last)
        else:
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(images)
        logits = logits.float()
        logits_all.append(logits.cpu() if to_host else logits)
        targets_all.append(targets.cpu() if to_host else targets)
        if advance is not None:
            advance(len(targets))
    return logits_all, targets_all


def run_evaluation(model: nn.Module, loader: EvalLoader, device: torch.device, num_classes: int, *,
                   inputs: BatchInput | None = None, keep_scores: bool = False,
                   progress: Callable[[int], Any] | None = None) -> EvalOutput:
    """Metrics of ``model`` on every batch of ``loader`` (:func:`forward_pass`, then
    :func:`~clsctl.engine.metrics.evaluate_logits`)."""
    logits, targets = forward_pass(model, loader, device, inputs=inputs, advance=progress)
    all_logits = torch.cat(logits) if logits else torch.empty(0, num_classes)
    all_targets = torch.cat(targets) if targets else torch.empty(0, dtype=torch.long)
    return evaluate_logits(all_logits, all_targets, num_classes, keep_scores=keep_scores)


# --------------------------------------------------------------------------- clsctl test


@dataclass
class EvalResult:
    """Metrics of a test run.

    Attributes:
        metrics: ``accuracy/top1``, ``accuracy/top5``, ``loss``, ``macro/*`` (in %).
        class_names: Names of the rows of ``per_class``: the dataset's classes.
        per_class: Precision, recall, F1 (in %) and support of each of those classes.
        confusion: ``matrix[true, predicted]`` over the model's classes.
        num_samples: Samples in the metrics.
        predictions: Per-sample predictions, when written to a file.
        excluded: Unreadable images left out of the metrics and predictions.
        tta: The test-time augmentation that ran (``flip``, ``five-crop``, ``ten-crop``), or None.
        seconds: Wall time of the pass over the data (the slowest process's).
        throughput: Images per second of that pass, all processes together.
        processes: Processes that shared the pass.
        model_class_names: The model's classes (ImageNet-1k's 1,000 for published weights).
        label_map: The model's label of each dataset class, when the two label sets differ.
        preprocessing: The preprocessing that ran, in one line.
        overrides: The ``--set`` assignments applied (to the preprocessing and to the data).
        source: What was tested, in words.
    """

    metrics: dict[str, float]
    class_names: list[str]
    per_class: dict[str, Any]
    confusion: list[list[int]]
    num_samples: int
    predictions: list[dict[str, Any]] | None = None
    excluded: int = 0
    tta: str | None = None
    seconds: float = 0.0
    throughput: float = 0.0
    processes: int = 1
    model_class_names: list[str] = field(default_factory=list)
    label_map: list[int] | None = None
    preprocessing: str = ""
    overrides: list[str] = field(default_factory=list)
    source: str = ""


def evaluate(source: str | Path | LoadedModel | None = None, *, model: str | None = None,
             pretrained: bool = False, weights: str | Path | None = None, num_classes: int | None = None,
             split: str = "test", data_root: str | Path | None = None, overrides: Sequence[str] = (),
             device: str | None = None, batch_size: int | None = None, out: str | Path | None = None,
             topk: int = 5, tta: str | None = None, show_progress: bool = True) -> EvalResult | None:
    """Evaluate a trained model (checkpoint, export, or a loaded model), or a model by name, on a dataset.

    Examples:
        ``evaluate("run/best.pt")``; ``evaluate(model="resnet50", pretrained=True, data_root="imagenet",
        split="val", tta="flip")``; ``evaluate(load_model("run/best.pt"), data_root="photos")``.

    Args:
        source: A clsctl checkpoint or export, or a :class:`~clsctl.engine.loading.LoadedModel`; or give
            ``model``.
        model: A registered model name or ``timm/<name>``, evaluated without a checkpoint.
        pretrained: Load ``model``'s published weights (torch.hub's cache; timm's for timm models).
        weights: Load ``model``'s weights from this file (state dict, clsctl checkpoint or safetensors export:
            a clsctl file brings its class names and preprocessing).
        num_classes: ``model``'s classifier size (default: the variant's, 1000 for ImageNet models).
        split: ``test`` (falls back to ``val``), ``val`` or ``train``. For ``model`` with ``data_root``: the
            ``meta/<split>.txt`` list of an ImageNet-style folder, else its ``<split>/`` sub-folder, else the
            folder itself; that dataset is ``data.test`` whatever the split.
        data_root: Image folder to test on instead of the recipe's (class names must be among the model's).
        overrides: ``--set`` strings for the preprocessing and the data (see the module docstring).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: Images per batch (per process).
        out: Write per-sample predictions here (JSON, with the scores in a ``.scores.npy`` beside it).
        topk: Predictions kept per sample in ``out``.
        tta: Test-time augmentation: ``flip``, ``five-crop`` or ``ten-crop`` (probabilities averaged).
        show_progress: Draw a progress bar.

    Returns:
        The result; ``None`` in processes other than rank 0 of a distributed run.

    Raises:
        ClsctlError: Both or neither of ``source`` and ``model``, unreadable data, classes that do not fit, an
            override key that cannot change.
    """
    if (source is None) == (model is None):
        raise ClsctlError("give a checkpoint or a model name (--model), not both" if source is not None
                          else "give a checkpoint or a model name (--model)")
    if tta is not None and tta not in TTA_MODES:
        raise ClsctlError(f"tta must be one of {', '.join(TTA_MODES)}, got {tta!r}")
    if source is not None and (pretrained or weights is not None or num_classes is not None):
        raise ClsctlError("--pretrained, --weights and --num-classes go with --model, not with a checkpoint")
    if pretrained and weights is not None:
        raise ClsctlError("give --pretrained or --weights, not both")
    ctx = None
    try:
        loaded, ctx = _load_for_test(source, model, pretrained, weights, num_classes, device)
        loaded, rest = loaded.with_overrides(list(overrides))
        data, key = evaluation_data(loaded, rest, split, data_root, batch_size)
        dataset = _dataset(loaded, data, key, tta)
        if out is not None and not hasattr(dataset, "samples"):
            raise ClsctlError(f"--out lists predictions per image file; the {key} split is a stream of tar "
                              "shards without them (test it without --out)")
        names, label_map = label_sets(loaded, dataset)
        ctx = ctx or D.setup(device or (loaded.recipe.runtime.device if loaded.recipe is not None else "auto"))
        gathered = _run(loaded, dataset, data.loader, ctx, tta, show_progress)
    finally:
        if ctx is not None:
            D.teardown(ctx)
    if gathered is None:
        return None
    (logits, targets), times = gathered
    result = _report(loaded, dataset, names, label_map, logits, targets, tta, out, topk)
    result.seconds, result.processes = max(times), ctx.world_size
    result.throughput = result.num_samples / result.seconds if result.seconds > 0 else math.nan
    result.overrides = list(overrides)
    return result


def _load_for_test(source: str | Path | LoadedModel | None, model: str | None, pretrained: bool,
                   weights: str | Path | None, num_classes: int | None,
                   device: str | None) -> tuple[LoadedModel, D.DistContext | None]:
    """The model to test, on the CPU; a named model whose published weights may download is loaded on rank 0
    first (one download), which needs the process group: it is returned then, else None."""
    if isinstance(source, LoadedModel):
        return source, None
    if source is not None:
        return load_model(source), None
    from clsctl.models import model_info, random_weights_warning

    meta = model_info(str(model))
    if pretrained and not meta.has_pretrained:
        raise ClsctlError(f"model '{model}' has no published weights; give --weights FILE")
    warning = random_weights_warning(str(model), weights=weights, pretrained=pretrained)
    if warning is not None:
        logger.warning(warning)

    def load() -> LoadedModel:  # random weights are seeded: every process builds the same network
        return load_model(str(model), kind="model", weights=weights, pretrained=pretrained, num_classes=num_classes,
                          seed=0)

    if not pretrained or D.env_ranks() is None:
        return load(), None
    ctx = D.setup(device or "auto")
    if ctx.is_main:
        loaded = load()
        D.barrier(ctx)
        return loaded, ctx
    D.barrier(ctx)
    return load(), ctx


def default_dataset_entry(data_root: str | Path, split: str) -> dict[str, Any]:
    """The dataset entry for a folder given to ``clsctl test --model``.

    ``<root>/meta/<split>.txt`` makes an ImageNet-style list (``imagenet``); else ``<root>/<split>/`` or the
    folder itself is an image folder (``<class>/<image>``). ``test`` falls back to ``val`` in both layouts.
    """
    root = Path(data_root)
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    tries = [split, "val"] if split == "test" else [split]
    for name in tries:
        if (root / "meta" / f"{name}.txt").is_file():
            return {"type": "imagenet", "root": str(root), "split": name}
    for name in tries:
        if (root / name).is_dir():
            return {"type": "image_folder", "root": str(root / name)}
    return {"type": "image_folder", "root": str(root)}


def evaluation_data(loaded: LoadedModel, rest: Sequence[str], split: str, data_root: str | Path | None,
                    batch_size: int | None) -> tuple[S.DataConfig, str]:
    """The data section an evaluation reads, and the key of the dataset it tests.

    A trained model's recipe gives the datasets (``test`` falls back to ``val``); ``data_root`` replaces the
    tested split's (an image folder's class list carries over). A model without a recipe (by name, an export)
    tests ``data.test``, from ``data_root`` or ``--set``. ``rest`` (the ``--set`` assignments the preprocessing
    did not take) may change that dataset entry and ``data.loader``/``on_bad_image``/... only.

    Raises:
        RecipeError: Another key, or values that do not validate (``data.<key>: message (got X)``).
        ClsctlError: No dataset to test.
    """
    from clsctl.recipe.load import apply_override

    trained = loaded.recipe is not None and loaded.origin.kind != "model"
    data: dict[str, Any] = loaded.recipe.data.model_dump(mode="json") if trained else {"loader": {"batch_size": 32}}
    key = ("val" if split == "test" and data.get("test") is None else split) if trained else "test"
    view = {"data": data}
    for assignment in rest:
        parts = assignment.split("=", 1)[0].strip().split(".")
        if parts[0] != "data" or len(parts) < 2 or not (parts[1] == key or parts[1] in DATA_KEYS):
            raise RecipeError(f"--set {'.'.join(parts)}: an evaluation changes only the preprocessing (data.mean, "
                              f"data.std, data.<split>.pipeline..., preprocessing.*) and the data it reads "
                              f"(data.{key}..., data.loader..., data.on_bad_image); this key cannot change")
        apply_override(view, assignment)
    data = view["data"]
    if data_root is not None:  # after --set: the folder replaces whatever dataset the split had
        entry = {"type": "image_folder", "root": str(data_root)} if trained else default_dataset_entry(data_root, split)
        old = data.get(key) or {}
        if trained and isinstance(old, dict) and old.get("type") == "image_folder" and old.get("classes"):
            entry["classes"] = old["classes"]
        data[key] = entry
    if batch_size is not None:
        data.setdefault("loader", {})["batch_size"] = batch_size
    config = _validated_data(data)
    if getattr(config, key) is None:
        name = loaded.origin.source
        raise ClsctlError(f"give --data-root DIR (or --set 'data.test={{type: ..., root: ...}}') to test {name} on"
                          if not trained else f"{name}'s recipe has no data.{key} dataset; give --data-root DIR")
    return config, key


def _validated_data(data: dict[str, Any]) -> S.DataConfig:
    from pydantic import ValidationError

    from clsctl.recipe.load import format_validation_errors

    try:
        return S.DataConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"data.{line}" for line in format_validation_errors(exc, data, S.DataConfig)]
        raise RecipeError(lines[0], details=lines[1:]) from None


def _dataset(loaded: LoadedModel, data: S.DataConfig, key: str, tta: str | None) -> ClassificationDataset:
    """The tested dataset, its images prepared by the model's preprocessing (or its test-time views)."""
    from clsctl.engine.tta import tta_transform

    transform = loaded.preprocessing.transform("uint8") if tta is None else tta_transform(loaded.preprocessing, tta)
    dataset = build_dataset(getattr(data, key), transform, on_bad_image=data.on_bad_image)
    return exclude_replaced_samples(dataset)


def label_sets(loaded: LoadedModel, dataset: ClassificationDataset) -> tuple[list[str], list[int] | None]:
    """The model's class names, and the model's label of each dataset class (None: the same labels).

    A trained model's classes are matched by name: the dataset's must be among them (a subset, in any order).
    A named model without trained classes maps a dataset onto ImageNet-1k's 1000 classes, or takes a dataset
    of as many classes as it has outputs in order.

    Raises:
        ClsctlError: Classes that do not fit.
    """
    names = list(loaded.class_names)
    if list(dataset.classes) == names:
        return names, None
    if loaded.origin.kind == "model" and loaded.recipe is None:
        return _named_label_sets(loaded, dataset)
    missing = [name for name in dataset.classes if name not in names]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ClsctlError(f"the dataset's classes {shown} are not among the model's {len(names)} classes "
                          f"({', '.join(names[:10])}{', ...' if len(names) > 10 else ''})")
    if dataset.multi_label:
        raise ClsctlError(f"a multi-label dataset must have the model's {len(names)} classes in its order")
    logger.info("the dataset has %d of the model's %d classes: metrics are over the classes present",
                len(dataset.classes), len(names))
    return names, [names.index(name) for name in dataset.classes]


def _named_label_sets(loaded: LoadedModel, dataset: ClassificationDataset) -> tuple[list[str], list[int] | None]:
    from clsctl.data.imagenet_classes import imagenet_class_names, map_to_imagenet
    from clsctl.models import model_info

    meta = model_info(loaded.model_name)
    outputs = len(loaded.class_names)
    if outputs == IMAGENET_CLASSES and meta.class_names in (None, "imagenet-1k"):
        if dataset.multi_label:
            raise ClsctlError("a multi-label dataset cannot be scored by an ImageNet-1k classifier")
        return imagenet_class_names(), map_to_imagenet(dataset.classes)
    if outputs == len(dataset.classes):
        logger.info("%s has %d outputs, one per dataset class: output i is dataset class i", loaded.model_name,
                    outputs)
        return list(dataset.classes), None
    raise ClsctlError(f"{loaded.model_name} has {outputs} outputs but the dataset has {len(dataset.classes)} "
                      f"classes: give weights trained on these classes with --num-classes "
                      f"{len(dataset.classes)}, or a model with ImageNet-1k's 1000 outputs")


def _run(loaded: LoadedModel, dataset: ClassificationDataset, loader_config: S.LoaderConfig, ctx: D.DistContext,
         tta: str | None, show_progress: bool) -> Any:
    """This process's share of the pass; every sample's logits and targets gathered on rank 0 (None elsewhere)."""
    from clsctl.data.loaders import build_eval_loader
    from clsctl.engine.tta import AverageViews

    net = loaded.module.to(ctx.device).eval()
    if tta is not None:
        net = AverageViews(net, loaded.multi_label).eval()
    loader = build_eval_loader(dataset, loader_config, pin_memory=ctx.device.type == "cuda",
                               num_replicas=ctx.world_size, rank=ctx.rank)
    with make_progress(show_progress and ctx.is_main) as progress:
        task = progress.add_task("test" if tta is None else f"test ({tta})", total=len(dataset), status="",
                                 unit="img")
        start = time.perf_counter()
        logits, targets = forward_pass(net, loader, ctx.device, inputs=loaded.preprocessing.device_input(),
                                       advance=lambda n: progress.advance(task, n * ctx.world_size))
        seconds = time.perf_counter() - start
        progress.update(task, completed=len(dataset))
    width = logits[0].shape[1] if logits else len(loaded.class_names)
    all_logits = torch.cat(logits) if logits else torch.empty(0, width)
    all_targets = torch.cat(targets) if targets else torch.empty(0, dtype=torch.long)
    return D.gather_to_main(loader.batch_sampler.indices(), all_logits, all_targets, ctx=ctx, extra=seconds)


def _report(loaded: LoadedModel, dataset: ClassificationDataset, names: list[str], label_map: list[int] | None,
            logits: torch.Tensor, targets: torch.Tensor, tta: str | None, out: str | Path | None,
            topk: int) -> EvalResult:
    """Metrics (and the predictions file) from every sample's logits, in dataset order."""
    if len(targets) == 0:
        raise DataError("no sample of the test split could be read: nothing to evaluate")
    if label_map is not None:
        lookup = torch.tensor(label_map, dtype=torch.long)
        targets = torch.where(targets >= 0, lookup[targets.clamp(min=0)], targets)
    result = evaluate_logits(logits, targets, len(names), keep_scores=out is not None)
    if result.excluded == len(targets):
        raise DataError(f"none of the {len(targets)} test images could be read: nothing to evaluate")
    metrics, per_class = result.metrics, result.per_class
    row_names = list(dataset.classes)
    if label_map is not None:
        # Per-class numbers and their macro means over the dataset's classes (a model may predict any of its
        # classes; the ones the dataset lacks have no support and would only dilute the means).
        kept = targets >= 0
        full = precision_recall_f1(confusion_matrix(logits[kept].argmax(1), targets[kept], len(names)))
        per_class = {key: [full[key][label] for label in label_map] for key in ("precision", "recall", "f1", "support")}
        for key in ("precision", "recall", "f1"):
            value = sum(per_class[key]) / len(label_map)
            per_class[f"macro_{key}"] = value
            metrics[f"macro/{key}"] = value
        row_names = [name if name == names[label] else f"{name} ({names[label]})"
                     for name, label in zip(dataset.classes, label_map)]
    predictions = None
    if out is not None:
        predictions = _write_predictions(out, loaded, dataset, names, result, tta, topk)
    return EvalResult(metrics, row_names, per_class, result.confusion, len(dataset) - result.excluded, predictions,
                      result.excluded, tta, model_class_names=names, label_map=label_map,
                      preprocessing=loaded.preprocessing.describe(), source=loaded.origin.describe())


def _write_predictions(out: str | Path, loaded: LoadedModel, dataset: ClassificationDataset, names: list[str],
                       result: EvalOutput, tta: str | None, topk: int) -> list[dict[str, Any]]:
    """Write the predictions file (see :mod:`clsctl.engine.predictions`) and return its records."""
    from clsctl.engine.predictions import PredictionsFile, prediction_records, write_predictions

    kept = result.kept.tolist()
    samples = [path for (path, _), keep in zip(dataset.samples, kept) if keep]
    excluded = [path for (path, _), keep in zip(dataset.samples, kept) if not keep]
    records = prediction_records(samples, result.scores, names, targets=result.targets.tolist(),
                                 multi_label=result.extra.get("multi_label", False), topk=topk)
    write_predictions(out, PredictionsFile(records, names, result.scores, _source_entry(loaded), tta,
                                           result.metrics, excluded, loaded.preprocessing.to_dict()))
    return records


def _source_entry(loaded: LoadedModel) -> dict[str, str]:
    kind = "model" if loaded.origin.kind == "model" else "checkpoint"
    return {kind: loaded.origin.source}


# --------------------------------------------------------------------------- clsctl infer


@dataclass
class Prediction:
    """Top-k classes of one image: ``(class index, class name, probability)`` best first."""

    path: str
    topk: list[tuple[int, str, float]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: what ``infer --json`` prints (the predictions file's record without a label)."""
        index, name, probability = self.topk[0]
        return {"path": self.path, "pred": index, "pred_name": name, "probability": probability,
                "topk": [{"class": i, "name": n, "probability": p} for i, n, p in self.topk]}


def expand_images(sources: Iterable[str | Path]) -> list[Path]:
    """Image files named by paths, folders (searched recursively) and glob patterns, in order, without repeats.

    Raises:
        DataError: A path that does not exist, a folder or pattern without images, or nothing at all.
    """
    import glob

    from clsctl.data.datasets import IMG_EXTENSIONS

    found: list[Path] = []
    for source in sources:
        text = str(source)
        path = Path(text)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
            if not files:
                raise DataError(f"{path} is a folder without images ({', '.join(IMG_EXTENSIONS)})")
            found += files
        elif path.exists():
            found.append(path)
        elif any(ch in text for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [p for p in matches if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS]
            if not files:
                raise DataError(f"no images match {text}")
            found += files
        else:
            raise DataError(f"image not found: {text}")
    if not found:
        raise DataError("no images to predict")
    return list(dict.fromkeys(found))


class _ImageFiles(torch.utils.data.Dataset):
    """Image files decoded and prepared for a model (the inference dataset: no labels)."""

    def __init__(self, paths: Sequence[Path], transform: Any) -> None:
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from clsctl.readers import read_image_tensor

        return self.transform(read_image_tensor(self.paths[index])), index


def predict(images: Sequence[str | Path], source: str | Path | LoadedModel | None = None, *,
            checkpoint: str | Path | None = None, model: str | None = None, weights: str | Path | None = None,
            pretrained: bool = False, num_classes: int | None = None, overrides: Sequence[str] = (),
            topk: int = 5, device: str | None = None, batch_size: int = 32,
            out: str | Path | None = None) -> list[Prediction]:
    """Classify images.

    Args:
        images: Files, folders or glob patterns.
        source: A checkpoint or export path, or a :class:`~clsctl.engine.loading.LoadedModel`.
        checkpoint: Same as ``source`` (the ``--checkpoint`` flag).
        model: A registered model name, used when no checkpoint is given; neither: ResNet-50 with its
            ImageNet weights.
        weights: Weights file for ``model``.
        pretrained: Published ImageNet weights for ``model`` (ImageNet class names are printed).
        num_classes: Classifier size for ``model``.
        overrides: ``--set`` changes to the preprocessing (other keys are refused).
        topk: Classes reported per image.
        device: ``auto``, ``cpu``, ``cuda``.
        batch_size: Images per forward pass.
        out: Also write a predictions file (JSON + ``.scores.npy``, the format ``test --out`` writes).

    Raises:
        ClsctlError: An image that cannot be read (the first, named), a bad model source or override.
    """
    from clsctl.engine.loading import load_from_options, refuse_other_overrides

    paths = expand_images(images)
    source = source if source is not None else checkpoint
    if isinstance(source, LoadedModel):
        loaded = source
    else:
        loaded = load_from_options(checkpoint=source, model=model, weights=weights, pretrained=pretrained,
                                   num_classes=num_classes, device=device)
    loaded, rest = loaded.with_overrides(list(overrides))
    refuse_other_overrides(rest, "infer")
    loader = torch.utils.data.DataLoader(_ImageFiles(paths, loaded.preprocessing.transform("uint8")), batch_size=batch_size)
    logits, _ = forward_pass(loaded.module, loader, loaded.device, inputs=loaded.preprocessing.device_input())
    scores = torch.cat(logits)
    # Multi-label models score each class on its own (sigmoid); the others share one softmax.
    probs = scores.sigmoid() if loaded.multi_label else scores.softmax(1)
    names = loaded.class_names
    top = probs.topk(min(topk, len(names)), dim=1)
    results = [Prediction(str(path), [(i, names[i], v) for i, v in zip(indices, values)])
               for path, values, indices in zip(paths, top.values.tolist(), top.indices.tolist())]
    if out is not None:
        from clsctl.engine.predictions import PredictionsFile, prediction_records, write_predictions

        records = prediction_records([str(p) for p in paths], probs, names, multi_label=loaded.multi_label,
                                     topk=topk)
        write_predictions(out, PredictionsFile(records, names, probs, _source_entry(loaded), None, {}, [],
                                               loaded.preprocessing.to_dict()))
    return results
