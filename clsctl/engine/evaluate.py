"""``evaluate``: test a checkpoint, or a model by name with published or local weights, on a dataset.

Two sources, one pass:

* a clsctl checkpoint: its recipe, class names and preprocessing are inside;
* a model name (registered or ``timm/<name>``) with ``pretrained`` or ``weights``: the preprocessing is the
  model's evaluation transform (:func:`~clsctl.data.transforms.eval_pipeline`), and the dataset's class names
  are mapped onto the model's classes (ImageNet-1k by WordNet id or name, see
  :mod:`clsctl.data.imagenet_classes`). The run is described by a small recipe, so ``overrides`` (``--set``)
  reach every part of it: ``data.test.pipeline.0.size=256``, ``data.mean=[0.5,0.5,0.5]``, another dataset
  type, ``data.loader.batch_size=64``.

Under several processes (``clsctl test --gpus N``, torchrun or srun) each process evaluates whole batches of
the single-process pass (:class:`~clsctl.data.loaders.ShardedBatchSampler`, no padding), the per-sample
logits are gathered to rank 0 in dataset order, and rank 0 computes the metrics and writes the predictions:
the same numbers as one process, bit for bit on the CPU (where each process uses as many threads as one would).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clsctl.data.datasets import ClassificationDataset, build_dataset, exclude_replaced_samples
from clsctl.data.loaders import build_eval_loader
from clsctl.data.transforms import TTA_MODES, build_pipeline, eval_pipeline, tta_pipeline
from clsctl.engine import distributed as D
from clsctl.engine.build import dataset_config
from clsctl.engine.eval_loop import run_evaluation
from clsctl.engine.metrics import confusion_matrix, precision_recall_f1
from clsctl.engine.progress import make_progress
from clsctl.errors import ClsctlError, DataError, RecipeError
from clsctl.recipe import Recipe, apply_override, schema as S, validate_recipe

logger = logging.getLogger("clsctl")

IMAGENET_CLASSES = 1000


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


@dataclass
class _Source:
    """What is evaluated: the recipe describing the run, the eval preprocessing and how to get the network."""

    name: str  # checkpoint path or model name, for titles and the predictions file
    kind: str  # "checkpoint" or "model"
    recipe: Recipe
    steps: list[S.Transform]
    mean: list[float]
    std: list[float]
    channel_order: str
    build: Callable[[], nn.Module]
    split: str  # the recipe's data entry to test on
    class_names: list[str] | None = None  # the checkpoint's classes (a named model's come from the dataset)
    multi_label: bool = False
    downloads: bool = False  # building may download weights: one process first


def evaluate(checkpoint: str | Path | None = None, *, model: str | None = None, pretrained: bool = False,
             weights: str | Path | None = None, num_classes: int | None = None, split: str = "test",
             data_root: str | Path | None = None, overrides: Sequence[str] = (), device: str | None = None,
             batch_size: int | None = None, out: str | Path | None = None, topk: int = 5, tta: str | None = None,
             show_progress: bool = True) -> EvalResult | None:
    """Evaluate a checkpoint, or a model by name, on a dataset.

    Examples:
        ``evaluate("run/best.pt")``; ``evaluate(model="resnet50", pretrained=True, data_root="imagenet",
        split="val", tta="flip")``.

    Args:
        checkpoint: A clsctl checkpoint; or give ``model``.
        model: A registered model name or ``timm/<name>``, evaluated without a checkpoint.
        pretrained: Load ``model``'s published weights (torch.hub's cache; timm's for timm models).
        weights: Load ``model``'s weights from this file (state dict or clsctl checkpoint).
        num_classes: ``model``'s classifier size (default: the variant's, 1000 for ImageNet models).
        split: ``test`` (falls back to ``val``), ``val`` or ``train``. For ``model`` with ``data_root``: the
            ``meta/<split>.txt`` list of an ImageNet-style folder, else its ``<split>/`` sub-folder, else the
            folder itself; that dataset is the evaluation recipe's ``data.test`` whatever the split.
        data_root: Image folder to test on (for a checkpoint: instead of the recipe's, same class names).
        overrides: ``--set`` strings applied to the checkpoint's recipe or the model's evaluation recipe.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: Images per batch (per process).
        out: Write per-sample predictions (JSON) here.
        topk: Predictions kept per sample in ``out``.
        tta: Test-time augmentation: ``flip``, ``five-crop`` or ``ten-crop`` (probabilities averaged).
        show_progress: Draw a progress bar.

    Returns:
        The result; ``None`` in processes other than rank 0 of a distributed run.

    Raises:
        ClsctlError: Both or neither of ``checkpoint`` and ``model``, unreadable data, classes that do not fit.
    """
    if (checkpoint is None) == (model is None):
        raise ClsctlError("give a checkpoint or a model name (--model), not both" if checkpoint is not None
                          else "give a checkpoint or a model name (--model)")
    if tta is not None and tta not in TTA_MODES:
        raise ClsctlError(f"tta must be one of {', '.join(TTA_MODES)}, got {tta!r}")
    if checkpoint is not None:
        if pretrained or weights is not None or num_classes is not None:
            raise ClsctlError("--pretrained, --weights and --num-classes go with --model, not with a checkpoint")
        source = _checkpoint_source(checkpoint, split, data_root, overrides, batch_size)
    else:
        source = _model_source(str(model), pretrained, weights, num_classes, split, data_root, overrides,
                               batch_size)
    recipe = source.recipe
    transform = (build_pipeline(source.steps, source.mean, source.std, channel_order=source.channel_order)
                 if tta is None else _tta_transform(source, tta))
    dataset = build_dataset(dataset_config(recipe, source.split), transform, on_bad_image=recipe.data.on_bad_image)
    exclude_replaced_samples(dataset)
    if out is not None and not hasattr(dataset, "samples"):
        raise ClsctlError(f"--out lists predictions per image file; the {source.split} split is a stream of tar "
                          "shards without them (test it without --out)")
    ctx = D.setup(device or recipe.runtime.device)
    try:
        names, label_map = _label_sets(source, dataset)
        net = _build_once(source, ctx).to(ctx.device).eval()
        if tta is not None:
            net = _average_views(net, source.multi_label)
        loader = build_eval_loader(dataset, recipe.data.loader, pin_memory=ctx.device.type == "cuda",
                                   num_replicas=ctx.world_size, rank=ctx.rank)
        with make_progress(show_progress and ctx.is_main) as progress:
            task = progress.add_task("test" if tta is None else f"test ({tta})", total=len(dataset), status="",
                                     unit="img")
            logits, targets, seconds = _forward(net, loader, ctx, lambda n: progress.advance(task, n))
            progress.update(task, completed=len(dataset))
        gathered = D.gather_to_main(loader.batch_sampler.indices(), logits, targets, ctx=ctx, extra=seconds)
    finally:
        D.teardown(ctx)
    if gathered is None:
        return None
    (logits, targets), times = gathered
    return _report(source, dataset, names, label_map, logits, targets, max(times), ctx.world_size, tta, out, topk)


def _checkpoint_source(checkpoint: str | Path, split: str, data_root: str | Path | None, overrides: Sequence[str],
                       batch_size: int | None) -> _Source:
    from clsctl.engine.inference import load_for_inference

    loaded = load_for_inference(checkpoint, kind="checkpoint")
    recipe_data = loaded.recipe.to_dict()
    for assignment in overrides:
        apply_override(recipe_data, assignment)
    if data_root is not None:
        # The split's dataset (``test`` falls back to ``val``) becomes that image folder. Only an image
        # folder's class list carries over; any other layout or a wrapper (repeat, kfold, ...) is replaced.
        data = recipe_data["data"]
        key = "val" if split == "test" and data.get("test") is None else split
        entry: dict[str, Any] = {"type": "image_folder", "root": str(data_root)}
        old = data.get(key) or {}
        if old.get("type") == "image_folder" and old.get("classes") is not None:
            entry["classes"] = old["classes"]
        data[key] = entry
    if batch_size is not None:
        recipe_data["data"]["loader"]["batch_size"] = batch_size
    recipe = validate_recipe(recipe_data, source=str(checkpoint))
    return _Source(str(checkpoint), "checkpoint", recipe, loaded.pipeline, loaded.mean, loaded.std,
                   loaded.channel_order, lambda: loaded.model, split, class_names=list(loaded.class_names),
                   multi_label=loaded.multi_label)


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


def _model_source(name: str, pretrained: bool, weights: str | Path | None, num_classes: int | None, split: str,
                  data_root: str | Path | None, overrides: Sequence[str], batch_size: int | None) -> _Source:
    from clsctl.models import model_info

    if pretrained and weights is not None:
        raise ClsctlError("give --pretrained or --weights, not both")
    meta = model_info(name)
    if pretrained and not meta.has_pretrained:
        raise ClsctlError(f"model '{name}' has no published weights; give --weights FILE")
    from clsctl.models import random_weights_warning

    warning = random_weights_warning(name, weights=weights, pretrained=pretrained)
    if warning is not None:
        logger.warning(warning)
    data: dict[str, Any] = {"loader": {"batch_size": batch_size or 32}, "mean": list(meta.mean),
                            "std": list(meta.std)}
    if data_root is not None:
        entry = default_dataset_entry(data_root, split)
        entry["pipeline"] = [step.model_dump(mode="json") for step in eval_pipeline(meta)]
        data["test"] = entry  # always data.test, so --set paths do not depend on --split
    recipe_data = {
        "model": {"name": name, "pretrained": pretrained, "weights": None if weights is None else str(weights),
                  "num_classes": num_classes},
        "data": data,
        "optim": {"type": "sgd", "lr": 0.1},  # the recipe schema asks for one; evaluation never uses it
    }
    for assignment in overrides:
        apply_override(recipe_data, assignment)
    recipe = validate_recipe(recipe_data, source=f"--model {name}")
    try:
        config = dataset_config(recipe, "test")
    except RecipeError:
        raise ClsctlError("give --data-root DIR (or --set 'data.test={type: ..., root: ...}') to test "
                          f"{name} on") from None
    steps = list(config.pipeline) or eval_pipeline(meta)  # a dataset entry set whole by --set has none
    outputs = recipe.model.num_classes or meta.num_classes
    return _Source(name, "model", recipe, steps, list(recipe.data.mean or meta.mean), list(recipe.data.std or meta.std),
                   recipe.data.channel_order, lambda: _build_named(recipe, outputs), "test", downloads=pretrained)


def _build_named(recipe: Recipe, outputs: int) -> nn.Module:
    """The named model with its weights. Random weights (no file) are seeded, so that every process of a
    distributed test builds the same network."""
    from clsctl.engine.inference import load_for_inference

    return load_for_inference(recipe, kind="recipe", num_classes=outputs, seed=0).model


def _build_once(source: _Source, ctx: D.DistContext) -> nn.Module:
    """Build the network; when that may download weights, rank 0 first (one download), then the others."""
    if not (source.downloads and ctx.distributed):
        return source.build()
    if ctx.is_main:
        net = source.build()
        D.barrier(ctx)
        return net
    D.barrier(ctx)
    return source.build()


def _label_sets(source: _Source, dataset: ClassificationDataset) -> tuple[list[str], list[int] | None]:
    """The model's class names, and the model's label of each dataset class (None: the same labels)."""
    if source.kind == "checkpoint":
        if dataset.classes != source.class_names:
            raise ClsctlError(f"dataset classes {dataset.classes} differ from the checkpoint's {source.class_names}")
        return list(source.class_names or []), None
    from clsctl.data.imagenet_classes import imagenet_class_names, map_to_imagenet
    from clsctl.models import model_info

    meta = model_info(source.recipe.model.name)
    outputs = source.recipe.model.num_classes or meta.num_classes
    if outputs == IMAGENET_CLASSES and meta.class_names in (None, "imagenet-1k"):
        if dataset.multi_label:
            raise ClsctlError("a multi-label dataset cannot be scored by an ImageNet-1k classifier")
        return imagenet_class_names(), map_to_imagenet(dataset.classes)
    if outputs == len(dataset.classes):
        logger.info("%s has %d outputs, one per dataset class: output i is dataset class i", source.name, outputs)
        return list(dataset.classes), None
    raise ClsctlError(f"{source.name} has {outputs} outputs but the dataset has {len(dataset.classes)} classes: "
                      f"give weights trained on these classes with --num-classes {len(dataset.classes)}, or a "
                      f"model with ImageNet-1k's 1000 outputs")


def _tta_transform(source: _Source, mode: str) -> Any:
    try:
        return tta_pipeline(source.steps, mode, source.mean, source.std, channel_order=source.channel_order)
    except ValueError as exc:
        raise ClsctlError(str(exc)) from None


def _average_views(net: nn.Module, multi_label: bool) -> nn.Module:
    from clsctl.engine.tta import AverageViews

    return AverageViews(net, multi_label).eval()


@torch.no_grad()
def _forward(net: nn.Module, loader: Any, ctx: D.DistContext,
             advance: Callable[[int], None]) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Logits (on the CPU, one copy at the end) and targets of this process's batches, and the seconds taken."""
    start = time.perf_counter()
    logits, targets = [], []
    for images, batch_targets in loader:
        logits.append(net(images.to(ctx.device, non_blocking=True)).float())
        targets.append(batch_targets)
        advance(len(batch_targets) * ctx.world_size)
    num_classes = logits[0].shape[1] if logits else 0
    all_logits = torch.cat(logits).cpu() if logits else torch.empty(0, num_classes)
    all_targets = torch.cat(targets) if targets else torch.empty(0, dtype=torch.long)
    return all_logits, all_targets, time.perf_counter() - start


def _report(source: _Source, dataset: ClassificationDataset, names: list[str], label_map: list[int] | None,
            logits: torch.Tensor, targets: torch.Tensor, seconds: float, processes: int, tta: str | None,
            out: str | Path | None, topk: int) -> EvalResult:
    """Metrics (and the predictions file) from every sample's logits, in dataset order."""
    if label_map is not None:
        lookup = torch.tensor(label_map, dtype=torch.long)
        targets = torch.where(targets >= 0, lookup[targets.clamp(min=0)], targets)
    chunks = list(zip(logits.split(1024), targets.split(1024)))
    result = run_evaluation(nn.Identity(), chunks, torch.device("cpu"), len(names), keep_scores=out is not None)
    metrics, per_class = result.metrics, result.per_class
    row_names = list(dataset.classes)
    if label_map is not None:
        # Per-class numbers and their macro means over the dataset's classes (a model may predict any of its
        # 1,000 classes; the ones the dataset lacks have no support and would only dilute the means).
        kept = targets >= 0
        full = precision_recall_f1(confusion_matrix(logits[kept].argmax(1), targets[kept], len(names)))
        per_class = {key: [full[key][label] for label in label_map] for key in ("precision", "recall", "f1", "support")}
        for key in ("precision", "recall", "f1"):
            value = sum(per_class[key]) / len(label_map)
            per_class[f"macro_{key}"] = value
            metrics[f"macro/{key}"] = value
        row_names = [name if name == names[label] else f"{name} ({names[label]})"
                     for name, label in zip(dataset.classes, label_map)]
    count = len(dataset) - result.excluded
    predictions = None
    if out is not None:
        predictions = _write_predictions(out, source, dataset, names, result, tta, topk)
    throughput = count / seconds if seconds > 0 else math.nan
    return EvalResult(metrics, row_names, per_class, result.confusion, count, predictions, result.excluded, tta,
                      seconds, throughput, processes, names, label_map)


def _write_predictions(out: str | Path, source: _Source, dataset: ClassificationDataset, names: list[str],
                       result: Any, tta: str | None, topk: int) -> list[dict[str, Any]]:
    """Write the predictions file (see :mod:`clsctl.engine.predictions`) and return its records."""
    from clsctl.engine.predictions import PredictionsFile, prediction_records, write_predictions

    kept = result.kept.tolist()
    samples = [path for (path, _), keep in zip(dataset.samples, kept) if keep]
    excluded = [path for (path, _), keep in zip(dataset.samples, kept) if not keep]
    records = prediction_records(samples, result.targets.tolist(), result.scores, names,
                                 multi_label=result.extra.get("multi_label", False), topk=topk)
    write_predictions(out, PredictionsFile(records, names, result.scores.tolist(), {source.kind: source.name}, tta,
                                           result.metrics, excluded))
    return records


# --------------------------------------------------------------------------- several processes


def _evaluate_worker(kwargs: dict[str, Any], log_level: int) -> Any:
    """Entry point of each launched process: evaluate its share; rank 0 hands back the result."""
    D._setup_worker_logging(log_level)
    try:
        return evaluate(**kwargs)
    except ClsctlError as exc:  # every rank hits user errors alike; the launching process renders one
        return {"error": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}


def launch_evaluation(nproc: int, **kwargs: Any) -> EvalResult:
    """:func:`evaluate` with ``nproc`` processes on this machine (one per GPU; CPU processes on gloo with
    ``device="cpu"``), started by torch's elastic launcher as ``clsctl train --gpus`` does.

    Raises:
        ClsctlError: Inside a run that torchrun/srun started already, more CUDA processes than GPUs, CPU
            processes without ``device="cpu"``, or a user error in the workers (same message and exit code).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    if D.env_ranks() is not None:
        raise ClsctlError("this process was started by torchrun or srun already; drop --gpus (each started "
                          "process is one worker)")
    device = kwargs.get("device")
    D.check_gpu_count(nproc, device)  # the same rule as training: CPU processes only with --device cpu
    config = D.launch_config(D.LaunchOptions(nproc))
    level = logging.getLogger("clsctl").getEffectiveLevel()
    try:
        threads = _same_threads_as_one_process() if device == "cpu" else D._worker_threads(nproc)
        with threads, D._restored_signal_handlers():
            results = elastic_launch(config, _evaluate_worker)(kwargs, level)
    except ChildFailedError as exc:
        raise RuntimeError(f"a test worker failed:\n{exc.format_msg()}") from None
    for value in (results or {}).values():
        if isinstance(value, dict) and "error" in value:
            error = D.WorkerError(value["message"])
            error.exit_code = int(value["exit_code"])
            raise error
    return (results or {})[0]


@contextlib.contextmanager
def _same_threads_as_one_process() -> Iterator[None]:
    """CPU workers compute with as many threads each as this process would, unless OMP_NUM_THREADS is set.

    A CPU convolution's last bits can depend on its thread count, so this is what makes ``--gpus N --device
    cpu`` give one process's numbers exactly (at the price of N x threads on the cores: CPU workers are for
    checking a distributed run, not for speed).
    """
    if "OMP_NUM_THREADS" in os.environ:
        yield
        return
    os.environ["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    try:
        yield
    finally:
        os.environ.pop("OMP_NUM_THREADS", None)


def is_worker_process() -> bool:
    """Whether torchrun or srun started this process as one of several, and it is not rank 0 (which reports)."""
    ranks = D.env_ranks()
    return ranks is not None and ranks[0] != 0
