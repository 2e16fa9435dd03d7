"""Turning a recipe into the objects a run needs: device, datasets, model (a trained model for use comes from
:func:`clsctl.engine.loading.load_model`)."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from clsctl.data.datasets import ImageListDataset, build_dataset
from clsctl.data.transforms import build_pipeline, default_pipeline, stays_uint8
from clsctl.errors import ClsctlError, RecipeError
from clsctl.models import create_model, model_info
from clsctl.models.heads import apply_neck_and_head
from clsctl.recipe import Recipe, schema as S

logger = logging.getLogger("clsctl")


def resolve_device(spec: str | None) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` on a machine without it is an error."""
    spec = spec or "auto"
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ClsctlError(f"device '{spec}' asked for, but CUDA is not available here (use --device cpu)")
    return torch.device(spec)


def warn_if_bf16_is_emulated(dtype: torch.dtype | None, device: torch.device) -> None:
    """bf16 on a GPU older than compute capability 8.0 (Ampere) runs emulated, often slower than fp32: say so."""
    if dtype != torch.bfloat16 or device.type != "cuda":
        return
    major, minor = torch.cuda.get_device_capability(device)
    if major < 8:
        logger.warning("bf16 on %s (compute capability %d.%d) is emulated and slow; bf16 needs 8.0 (Ampere) or "
                       "newer; use fp16 on this GPU (runtime.amp: fp16, benchmark --amp fp16)",
                       torch.cuda.get_device_name(device), major, minor)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; in deterministic mode also ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def normalization(recipe: Recipe) -> tuple[list[float], list[float]]:
    """Mean and std: the recipe's when given, else the model's."""
    meta = model_info(recipe.model.name)
    mean = list(recipe.data.mean or meta.mean)
    std = list(recipe.data.std or meta.std)
    return mean, std


def dataset_config(recipe: Recipe, split: str) -> S.Dataset:
    """The dataset entry of ``split``; ``test`` falls back to ``val``."""
    config = getattr(recipe.data, split)
    if config is None and split == "test":
        config = recipe.data.val
    if config is None:
        raise RecipeError(f"the recipe has no data.{split} dataset")
    return config


def effective_pipeline(recipe: Recipe, split: str) -> list[S.Transform]:
    """The split's transform steps; an empty pipeline resizes to the model's input size."""
    steps = list(dataset_config(recipe, split).pipeline)
    return steps or default_pipeline(model_info(recipe.model.name).input_size)


def build_split(recipe: Recipe, split: str, base_dir: Path | None = None, *,
                output: Literal["float", "uint8"] = "float") -> ImageListDataset:
    """The dataset of ``split`` with its transform pipeline.

    Args:
        output: ``float``: items are normalised float tensors. ``uint8``: items stay uint8 where the pipeline
            allows, for :func:`device_input` to normalise on the device (what training does).

    With ``data.decode: gpu`` and ``uint8`` output, JPEG files come as bytes for :func:`device_input` to decode.
    """
    if split == "train":
        mean, std = normalization(recipe)
        transform = build_pipeline(effective_pipeline(recipe, split), mean, std,
                                   channel_order=recipe.data.channel_order, output=output)
    else:  # validation and test prepare images as a checkpoint of this recipe will (one Preprocessing)
        from clsctl.data.preprocessing import Preprocessing

        transform = Preprocessing.from_recipe(recipe, split).transform(output)
    dataset = build_dataset(dataset_config(recipe, split), transform, base_dir, on_bad_image=recipe.data.on_bad_image)
    if recipe.data.decode == "gpu" and output == "uint8" and stays_uint8(effective_pipeline(recipe, split)):
        from clsctl.data.datasets import encode_jpegs

        encode_jpegs(dataset, split)
    return dataset


def device_input(recipe: Recipe, device: torch.device | None = None) -> Any:
    """The recipe's :class:`~clsctl.data.device.DeviceInput`: the loader batch -> normalised model input.

    Raises:
        RecipeError: ``data.decode: gpu`` but ``device`` is not a CUDA device.
    """
    from clsctl.data.device import DeviceInput

    mean, std = normalization(recipe)
    decoder = None
    if recipe.data.decode == "gpu":
        if device is None or device.type != "cuda":
            raise RecipeError(f"data.decode: gpu decodes JPEGs on a CUDA device, but this run uses "
                              f"{device or 'the CPU'}; set data.decode: cpu (or train on a GPU)")
        from clsctl.data.gpu_decode import BatchDecoder

        transforms = {split: build_pipeline(effective_pipeline(recipe, split), mean, std,
                                            channel_order=recipe.data.channel_order, output="uint8")
                      for split in ("train", "val") if getattr(recipe.data, split) is not None}
        decoder = BatchDecoder(transforms, recipe.data.on_bad_image)
    return DeviceInput(mean, std, recipe.data.channel_order, decoder)


def build_model(recipe: Recipe, num_classes: int, *, load_weights: bool = True) -> nn.Module:
    """The recipe's model with ``num_classes`` outputs, neck and head; weights only when ``load_weights``.

    Order: build, published weights (they fit the family's own classifier), swap neck and head, then the
    ``weights`` file (which may come from a clsctl run with this very neck and head), then ``init``.
    """
    from clsctl.models.weights import load_partial, load_weights_file

    config = recipe.model
    if config.num_classes is not None and config.num_classes != num_classes:
        raise RecipeError(f"model.num_classes is {config.num_classes} but the dataset has {num_classes} classes")
    try:
        model = create_model(config.name, pretrained=config.pretrained and load_weights, num_classes=num_classes,
                             **config.kwargs)
    except (TypeError, ValueError) as exc:  # an option the family does not take, or a value out of range
        message = exc.message if isinstance(exc, ClsctlError) else str(exc)
        raise RecipeError(f"model.kwargs: {message}") from exc
    apply_neck_and_head(model, config.neck, config.head, num_classes)
    if load_weights and config.weights is not None:
        load_weights_file(model, config.weights)
    if load_weights and config.init is not None:
        load_partial(model, config.init.checkpoint, prefix=config.init.prefix, strict=config.init.strict)
    return model


def is_multi_label_recipe(recipe: Recipe) -> bool:
    """Whether the recipe trains independent per-class scores (multi-label loss or head)."""
    from clsctl.engine.losses import is_multi_label

    return is_multi_label(recipe.loss) or isinstance(recipe.model.head, S.MultiLabelLinearHead)
