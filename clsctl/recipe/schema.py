"""The recipe: pydantic models for every section, strict about unknown keys.

Datasets, transforms, optimizers, schedules and losses are discriminated unions on ``type``, so each entry
is validated against exactly the options of its kind.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

# The neck and head kinds are defined once, in the models layer that builds them; model.neck and model.head
# take them as they are.
from clsctl.models.heads import (  # noqa: F401  (re-used as the schema's types, under their own names)
    GeneralizedMeanPooling, GlobalAveragePooling, Head, LinearHead, MultiLabelLinearHead, Neck, PreLogitsHead,
    StackedHead,
)

PositiveFloat = Annotated[float, Field(gt=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
Size = Union[Annotated[int, Field(gt=0)], tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]]]
Interpolation = Literal["nearest", "bilinear", "bicubic", "lanczos"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(s|m|h|d)?\s*$")
_DURATION_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value: float | str | None) -> float | None:
    """Seconds of a duration: a number of seconds, or a string like ``30s``, ``10m``, ``1.5h``, ``2d``.

    Raises:
        ValueError: Not a duration (the recipe error shows the message).
    """
    if value is None or isinstance(value, (int, float)):
        if value is not None and value < 0:
            raise ValueError("a duration cannot be negative")
        return None if value is None else float(value)
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"'{value}' is not a duration: use seconds (30) or a number with s, m, h or d (10m, 1.5h)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def _check_duration(value: float | str) -> float | str:
    duration_seconds(value)
    return value


Duration = Annotated[Union[float, str], AfterValidator(_check_duration)]


class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=False, protected_namespaces=())


# --------------------------------------------------------------------------- model


class InitConfig(Section):
    """Initialise (part of) the model from a checkpoint after it is built."""

    checkpoint: str = Field(description="State dict, torchvision/timm weights or clsctl checkpoint.")
    prefix: str | None = Field(None, description="Load only keys under this prefix (stripped), e.g. backbone.")
    strict: bool = Field(False, description="Fail unless every model key is loaded.")


class ModelConfig(Section):
    """Which network to build and which weights to start from."""

    name: str = Field(description="Registered model name, e.g. resnet50 (see `clsctl list-models`), timm/<name> or "
                                  "hf-hub:<org>/<repo>.")
    num_classes: Annotated[int, Field(gt=0)] | None = Field(None, description="Default: the dataset's class count.")
    pretrained: bool = Field(False, description="Start from the published ImageNet weights.")
    weights: str | None = Field(None, description="Local weights file (state dict, clsctl checkpoint or .safetensors).")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Family options, e.g. cifar_stem, frozen_stages.")
    neck: Neck | None = Field(None, description="Replace the model's pooling (gap, gem).")
    head: Head | None = Field(None, description="Replace the model's classifier.")
    init: InitConfig | None = Field(None, description="Load (part of) a checkpoint after building.")

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from clsctl.hf_hub import is_hf_hub_name
        from clsctl.models import MODELS
        from clsctl.models.timm_models import is_timm_name
        from clsctl.registry import unknown_name_message

        if name not in MODELS and not is_timm_name(name) and not is_hf_hub_name(name):
            raise ValueError(unknown_name_message("model", name, MODELS.names()))
        return name


# --------------------------------------------------------------------------- transforms


class Resize(Section):
    """Resize; an int resizes the shorter edge, a pair sets (height, width)."""

    type: Literal["resize"]
    size: Size
    interpolation: Interpolation = "bilinear"


class RandomResizedCrop(Section):
    """Crop a random area and aspect ratio, then resize (Inception-style)."""

    type: Literal["random_resized_crop"]
    size: Size
    scale: tuple[Probability, Probability] = (0.08, 1.0)
    ratio: tuple[PositiveFloat, PositiveFloat] = (3 / 4, 4 / 3)
    interpolation: Interpolation = "bilinear"


class CenterCrop(Section):
    """Crop the centre."""

    type: Literal["center_crop"]
    size: Size


class RandomCrop(Section):
    """Random crop after optional padding (the CIFAR recipe)."""

    type: Literal["random_crop"]
    size: Size
    padding: Annotated[int, Field(ge=0)] = 0
    padding_mode: Literal["constant", "edge", "reflect", "symmetric"] = "constant"


class RandomHorizontalFlip(Section):
    """Mirror left-right with probability ``prob``."""

    type: Literal["random_horizontal_flip"]
    prob: Probability = 0.5


class RandomVerticalFlip(Section):
    """Mirror top-bottom with probability ``prob``."""

    type: Literal["random_vertical_flip"]
    prob: Probability = 0.5


class ColorJitter(Section):
    """Random brightness, contrast, saturation and hue."""

    type: Literal["color_jitter"]
    brightness: Annotated[float, Field(ge=0)] = 0.0
    contrast: Annotated[float, Field(ge=0)] = 0.0
    saturation: Annotated[float, Field(ge=0)] = 0.0
    hue: Annotated[float, Field(ge=0, le=0.5)] = 0.0


class RandomGrayscale(Section):
    """Convert to grey (kept 3-channel) with probability ``prob``."""

    type: Literal["random_grayscale"]
    prob: Probability = 0.1


class RandomRotation(Section):
    """Rotate by a random angle in [-degrees, degrees]."""

    type: Literal["random_rotation"]
    degrees: Annotated[float, Field(ge=0, le=180)]


class ResizeEdge(Section):
    """Resize so the shorter (``short``), longer, ``width`` or ``height`` edge is ``size``, keeping the aspect
    ratio."""

    type: Literal["resize_edge"]
    size: Annotated[int, Field(gt=0)]
    edge: Literal["short", "long", "width", "height"] = "short"
    interpolation: Interpolation = "bilinear"


class EfficientNetRandomCrop(Section):
    """EfficientNet's training crop: a random box covering ``scale`` of the area (at least ``min_covered``) with
    an aspect ratio in ``ratio``, resized to ``size``; after ``max_attempts`` failures, the EfficientNet centre crop."""

    type: Literal["efficientnet_random_crop"]
    size: Annotated[int, Field(gt=0)]
    scale: tuple[Probability, Probability] = (0.08, 1.0)
    ratio: tuple[PositiveFloat, PositiveFloat] = (3 / 4, 4 / 3)
    min_covered: Probability = 0.1
    max_attempts: Annotated[int, Field(gt=0)] = 10
    crop_padding: Annotated[int, Field(ge=0)] = 32
    interpolation: Interpolation = "bicubic"


class EfficientNetCenterCrop(Section):
    """EfficientNet's evaluation crop: the centre square of side ``size / (size + crop_padding)`` of the shorter
    edge, resized to ``size``."""

    type: Literal["efficientnet_center_crop"]
    size: Annotated[int, Field(gt=0)]
    crop_padding: Annotated[int, Field(ge=0)] = 32
    interpolation: Interpolation = "bicubic"


Fill = tuple[Annotated[int, Field(ge=0, le=255)], Annotated[int, Field(ge=0, le=255)],
             Annotated[int, Field(ge=0, le=255)]]


class RandAugment(Section):
    """RandAugment (Cubuk et al., 2020): ``num_ops`` random operations of strength
    ``magnitude / (num_magnitude_bins - 1)`` of each operation's maximum.

    The default of 11 bins makes ``magnitude`` the level of timm's ``rand-m<magnitude>`` and MMPretrain's
    ``magnitude_level`` (both out of 10); torchvision's own default is 31 bins, a third of that strength.

    ``policy``: ``torchvision`` (torchvision's operations, every picked one applied) or ``timm_increasing``
    (timm's ``rand-...-inc1`` and MMPretrain's ``policies='timm_increasing'``: 15 operations whose strength grows
    with the magnitude, each picked one applied with probability 1/2; MMPretrain's ``total_level`` is
    ``num_magnitude_bins - 1``).
    """

    type: Literal["rand_augment"]
    num_ops: Annotated[int, Field(ge=1)] = 2
    magnitude: Annotated[int, Field(ge=0)] = 9
    num_magnitude_bins: Annotated[int, Field(ge=2)] = 11
    interpolation: Interpolation = "nearest"
    policy: Literal["torchvision", "timm_increasing"] = "torchvision"
    magnitude_std: Annotated[float, Field(ge=0)] = Field(
        0.0, description="timm_increasing: normal noise of this std on the magnitude of each operation.")
    fill: Fill | None = Field(None, description="RGB colour (0-255) of pixels geometric operations uncover "
                                                "(default black; MMPretrain pads with the mean colour).")

    @model_validator(mode="after")
    def _magnitude_in_bins(self) -> RandAugment:
        if self.magnitude >= self.num_magnitude_bins:
            raise ValueError(f"magnitude must be below num_magnitude_bins ({self.num_magnitude_bins})")
        if self.magnitude_std and self.policy != "timm_increasing":
            raise ValueError("magnitude_std needs policy timm_increasing")
        return self


class AutoAugment(Section):
    """AutoAugment (Cubuk et al., 2019) with a learned policy (ImageNet's by default)."""

    type: Literal["auto_augment"]
    policy: Literal["imagenet", "cifar10", "svhn"] = "imagenet"
    interpolation: Interpolation = "nearest"
    fill: Fill | None = Field(None, description="RGB colour (0-255) of pixels geometric operations uncover "
                                                "(default black; MMPretrain pads with the mean colour).")


class TrivialAugment(Section):
    """TrivialAugment (Wide): one random operation of random strength per image."""

    type: Literal["trivial_augment"]
    num_magnitude_bins: Annotated[int, Field(ge=2)] = 31
    interpolation: Interpolation = "nearest"


class Lighting(Section):
    """AlexNet-style PCA colour noise: adds eigvec @ (alpha * eigval), alpha ~ N(0, alphastd), to every pixel.

    Runs on the [0, 1] tensor before normalisation (wherever it appears in the pipeline); eigenvalues and
    eigenvectors default to ImageNet's RGB ones.
    """

    type: Literal["lighting"]
    alphastd: Annotated[float, Field(ge=0)] = 0.1
    eigval: tuple[float, float, float] = (0.2175, 0.0188, 0.0045)
    eigvec: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]] = (
        (-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


class RandomErasing(Section):
    """Erase a random box with probability ``prob`` (Zhong et al., 2020); runs on the normalised tensor, last.

    ``value``: a number (0 erases to the mean colour, as the tensor is normalised) or ``random`` (per-pixel
    normal noise).
    """

    type: Literal["random_erasing"]
    prob: Probability = 0.25
    scale: tuple[Probability, Probability] = (0.02, 1 / 3)
    ratio: tuple[PositiveFloat, PositiveFloat] = (0.3, 3.3)
    value: float | Literal["random"] = 0.0
    box: Literal["retry", "clip"] = Field(
        "retry", description="retry: torchvision's box draw (up to 10 tries for a box inside the image, else no "
                             "erasing); clip: MMPretrain's (one box of the drawn area and aspect, clipped to the "
                             "image, so a picked image is always erased).")


Transform = Annotated[
    Union[Resize, RandomResizedCrop, CenterCrop, RandomCrop, RandomHorizontalFlip, RandomVerticalFlip, ColorJitter,
          RandomGrayscale, RandomRotation, ResizeEdge, EfficientNetRandomCrop, EfficientNetCenterCrop, RandAugment,
          AutoAugment, TrivialAugment, Lighting, RandomErasing],
    Field(discriminator="type"),
]


class Mixup(Section):
    """Mixup (Zhang et al., 2018): blend two images and their targets by lam ~ Beta(alpha, alpha)."""

    type: Literal["mixup"]
    alpha: PositiveFloat = 0.8
    prob: Probability | None = Field(None, description="Chance this augment is picked for a batch (default: an "
                                                       "equal share of what the others leave).")


class CutMix(Section):
    """CutMix (Yun et al., 2019): paste a box of another image; targets mix by the box's area."""

    type: Literal["cutmix"]
    alpha: PositiveFloat = 1.0
    prob: Probability | None = Field(None, description="Chance this augment is picked for a batch.")


class ResizeMix(Section):
    """ResizeMix (Qin et al., 2020): paste a whole other image, resized into a random box; targets mix by area."""

    type: Literal["resizemix"]
    alpha: PositiveFloat = 1.0
    lam_min: Probability = 0.1
    lam_max: Probability = 0.8
    prob: Probability | None = Field(None, description="Chance this augment is picked for a batch.")

    @model_validator(mode="after")
    def _range(self) -> ResizeMix:
        if self.lam_min > self.lam_max:
            raise ValueError("lam_min must not exceed lam_max")
        return self


BatchAugment = Annotated[Union[Mixup, CutMix, ResizeMix], Field(discriminator="type")]


# --------------------------------------------------------------------------- datasets


class ImageFolderDataset(Section):
    """``root/<class>/<image>`` folders; classes are the sorted sub-folder names."""

    type: Literal["image_folder"]
    root: str
    classes: list[str] | None = Field(None, description="Use (and order) only these class folders.")
    pipeline: list[Transform] = Field(default_factory=list)


class AnnotationFileDataset(Section):
    """A text file of ``relative/path.jpg label`` lines; images are looked up under ``root``."""

    type: Literal["ann_file"]
    root: str
    ann_file: str
    classes: list[str] | str = Field(description="Class names, or a text file with one name per line.")
    pipeline: list[Transform] = Field(default_factory=list)


class ImageNetDataset(Section):
    """ImageNet layout: ``root/<split>/...`` images listed in ``root/meta/<split>.txt`` as ``path label`` lines."""

    type: Literal["imagenet"]
    root: str
    split: Literal["train", "val", "test"] = "train"
    ann_file: str | None = Field(None, description="Default: <root>/meta/<split>.txt.")
    classes: list[str] | str | None = Field(
        None, description="Names or a file; default <root>/meta/classes.txt, else the sorted <root>/train folders.")
    pipeline: list[Transform] = Field(default_factory=list)


class TorchvisionDataset(Section):
    """CIFAR-10/100, MNIST or Fashion-MNIST in torchvision's own files under ``root`` (downloaded when missing)."""

    type: Literal["cifar10", "cifar100", "mnist", "fashion_mnist"]
    root: str
    split: Literal["train", "test"] = "train"
    download: bool = Field(True, description="Download into root when the files are missing.")
    pipeline: list[Transform] = Field(default_factory=list)


class VOCDataset(Section):
    """PASCAL VOC 2007 as multi-label classification; ``root`` is the ``VOC2007`` folder (JPEGImages, ...)."""

    type: Literal["voc2007"]
    root: str
    split: Literal["train", "val", "trainval", "test"] = "trainval"
    difficult: Literal["ignore", "positive", "negative"] = Field(
        "ignore", description="Objects marked difficult: ignored in loss and metrics (-1 target), or counted.")
    pipeline: list[Transform] = Field(default_factory=list)


class CUBDataset(Section):
    """CUB-200-2011; ``root`` is the ``CUB_200_2011`` folder (images.txt, image_class_labels.txt, ...)."""

    type: Literal["cub200"]
    root: str
    split: Literal["train", "test"] = "train"
    pipeline: list[Transform] = Field(default_factory=list)


class OpenMMLabJsonDataset(Section):
    """An OpenMMLab 2.0 annotation file: ``{"metainfo": {"classes": [...]}, "data_list": [{"img_path": ...,
    "gt_label": 3}, ...]}``; a list ``gt_label`` makes the data multi-label."""

    type: Literal["openmmlab_json"]
    ann_file: str
    root: str = Field("", description="Folder img_path is relative to (MMPretrain's data_prefix).")
    classes: list[str] | str | None = Field(None, description="Default: metainfo.classes.")
    pipeline: list[Transform] = Field(default_factory=list)


class WebDatasetShards(Section):
    """Tar shards in the WebDataset layout, streamed shard by shard: each sample is ``<key>.<jpg|png|...>`` plus
    ``<key>.cls`` (the class index as text). ``clsctl prepare-data shards`` writes them from an image folder."""

    type: Literal["webdataset"]
    urls: str | list[str] = Field(
        description="Shards: local paths (brace patterns such as shard-{000000..000009}.tar), pipe:COMMAND (reads "
                    "the command's output) or http(s):// URLs.")
    classes: list[str] | str | None = Field(
        None, description="Class names or a file with one per line; default: classes.txt beside the first shard.")
    shuffle_buffer: Annotated[int, Field(ge=0)] = Field(
        1000, description="Samples each loader worker mixes before yielding them (training; 0: none). The shard "
                          "order is shuffled every epoch as well.")
    epoch_size: Annotated[int, Field(gt=0)] | None = Field(
        None, description="Samples per epoch over all processes; default: the shards' sample count (from index.json "
                          "beside local shards, else read from their headers). Needed for pipe: and http shards.")
    pipeline: list[Transform] = Field(default_factory=list)


class _Wrapper(Section):
    """A dataset made of other datasets; its pipeline is the inner dataset's."""

    @property
    def pipeline(self) -> list[Transform]:
        """The transform steps of the (first) inner dataset."""
        return list(self.dataset.pipeline)  # type: ignore[attr-defined]


class RepeatDataset(_Wrapper):
    """The inner dataset ``times`` times over (fewer, longer epochs for small datasets)."""

    type: Literal["repeat"]
    dataset: Dataset
    times: Annotated[int, Field(gt=0)]


class ConcatDataset(_Wrapper):
    """Several datasets with the same classes, one after another; all use the first dataset's pipeline."""

    type: Literal["concat"]
    datasets: list[Dataset] = Field(min_length=1)

    @property
    def pipeline(self) -> list[Transform]:
        return list(self.datasets[0].pipeline)

    @model_validator(mode="after")
    def _one_pipeline(self) -> ConcatDataset:
        first = self.datasets[0].pipeline
        if any(d.pipeline and d.pipeline != first for d in self.datasets[1:]):
            raise ValueError("one pipeline runs for all concatenated datasets: give it on the first only")
        return self


class ClassBalancedDataset(_Wrapper):
    """Repeat-factor sampling (LVIS): a sample is repeated ceil(max(1, sqrt(oversample_thr / f))) times, f being
    the smallest frequency (fraction of samples) among its classes."""

    type: Literal["class_balanced"]
    dataset: Dataset
    oversample_thr: Annotated[float, Field(gt=0, le=1)]


class KFoldDataset(_Wrapper):
    """One fold of K-fold cross-validation: the held-out fold (``test_mode``) or the other K-1 folds."""

    type: Literal["kfold"]
    dataset: Dataset
    fold: Annotated[int, Field(ge=0)] = 0
    num_splits: Annotated[int, Field(ge=2)] = 5
    test_mode: bool = Field(False, description="The held-out fold (validation) instead of the training folds.")
    seed: int | None = Field(0, description="Shuffle before splitting (null: consecutive folds in dataset order).")

    @model_validator(mode="after")
    def _fold_in_range(self) -> KFoldDataset:
        if self.fold >= self.num_splits:
            raise ValueError(f"fold must be below num_splits ({self.num_splits}), got {self.fold}")
        return self


Dataset = Annotated[
    Union[ImageFolderDataset, AnnotationFileDataset, ImageNetDataset, TorchvisionDataset, VOCDataset, CUBDataset,
          OpenMMLabJsonDataset, WebDatasetShards, RepeatDataset, ConcatDataset, ClassBalancedDataset, KFoldDataset],
    Field(discriminator="type"),
]
for _wrapper in (RepeatDataset, ConcatDataset, ClassBalancedDataset, KFoldDataset):
    _wrapper.model_rebuild()


class LoaderConfig(Section):
    """DataLoader settings shared by all splits."""

    batch_size: Annotated[int, Field(gt=0)] = Field(32, description="Images per step per device.")
    num_workers: Annotated[int, Field(ge=0)] = 2
    pin_memory: bool | None = Field(None, description="Default: on when training on CUDA.")
    persistent_workers: bool = True
    prefetch_factor: Annotated[int, Field(gt=0)] = Field(4, description="Batches each worker loads ahead.")
    drop_last: bool = False


class DataConfig(Section):
    """Datasets of each split and how they are loaded."""

    train: Dataset | None = None
    val: Dataset | None = None
    test: Dataset | None = Field(None, description="Default: the val dataset.")
    loader: LoaderConfig = Field(default_factory=LoaderConfig)
    mean: tuple[float, float, float] | None = Field(None, description="Default: the model's (ImageNet for most).")
    std: tuple[PositiveFloat, PositiveFloat, PositiveFloat] | None = None
    channel_order: Literal["rgb", "bgr"] = Field(
        "rgb", description="Channel order the model takes; mean/std are always given in RGB order.")
    on_bad_image: Literal["skip", "fail"] = Field(
        "skip", description="An unreadable image file: replace it by the next sample and count it, or stop.")
    decode: Literal["cpu", "gpu"] = Field(
        "cpu", description="Where training decodes JPEG files: in the loader workers, or in batches on the GPU "
                           "(nvJPEG; the pipeline then runs on the GPU too). gpu needs CUDA.")
    batch_augments: list[BatchAugment] = Field(
        default_factory=list, description="Batch-level mixing for training (mixup, cutmix, resizemix); one is "
                                          "picked per batch by its prob, none with the probability left over.")

    @field_validator("batch_augments")
    @classmethod
    def _probabilities(cls, augments: list[Any]) -> list[Any]:
        total = sum(a.prob for a in augments if a.prob is not None)
        if total > 1 + 1e-9:
            raise ValueError(f"the probs of batch_augments add up to {total:g}; at most 1")
        return augments


# --------------------------------------------------------------------------- optimizer, schedule, loss


class ParamGroupRule(Section):
    """Multipliers for the parameters whose name starts with a prefix."""

    lr_mult: Annotated[float, Field(ge=0)] = 1.0
    decay_mult: Annotated[float, Field(ge=0)] = 1.0


class Paramwise(Section):
    """Per-parameter options: other weight decay for norm and bias parameters, per-prefix multipliers, layer decay."""

    norm_decay_mult: Annotated[float, Field(ge=0)] | None = Field(
        None, description="Weight-decay multiplier of normalisation-layer parameters (0: no decay).")
    bias_decay_mult: Annotated[float, Field(ge=0)] | None = Field(
        None, description="Weight-decay multiplier of biases (0: no decay).")
    flat_decay_mult: Annotated[float, Field(ge=0)] | None = Field(
        None, description="Weight-decay multiplier of other 1-D parameters and tokens (cls token, position embedding).")
    custom_keys: dict[str, ParamGroupRule] = Field(
        default_factory=dict, description="Name prefix (or a glob pattern with * ? [...], matched against the whole "
                                          "parameter name, e.g. '*.relative_position_bias_table') -> lr/decay "
                                          "multipliers; the longest matching key wins (ties: the alphabetically first).")
    layer_decay: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None, description="Layer-wise lr decay for ViT-style models: block i of L gets lr x decay^(L+1-i).")


class ClipGrad(Section):
    """Gradient clipping before each optimizer step."""

    type: Literal["norm", "value"] = "norm"
    max_norm: PositiveFloat = Field(1.0, description="Largest total norm (norm) or absolute value (value).")
    norm_type: PositiveFloat = 2.0


class OptimizerBase(Section):
    """Options every optimizer takes."""

    lr: PositiveFloat
    base_batch_size: Annotated[int, Field(gt=0)] | None = Field(
        None, description="Global batch size lr is meant for; --auto-scale-lr scales lr by actual/base.")
    paramwise: Paramwise = Field(default_factory=Paramwise)
    clip_grad: ClipGrad | None = Field(None, description="Clip gradients (after unscaling under AMP).")
    accumulate_steps: Annotated[int, Field(gt=0)] = Field(1, description="Batches whose gradients make one step.")


class SGD(OptimizerBase):
    """Stochastic gradient descent with momentum."""

    type: Literal["sgd"]
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    nesterov: bool = False


Betas = tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]]


class Adam(OptimizerBase):
    """Adam (weight decay added to the gradient, L2-style)."""

    type: Literal["adam"]
    betas: Betas = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    amsgrad: bool = False


class AdamW(OptimizerBase):
    """Adam with decoupled weight decay."""

    type: Literal["adamw"]
    betas: Betas = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    weight_decay: Annotated[float, Field(ge=0)] = 0.05
    amsgrad: bool = False


class RMSprop(OptimizerBase):
    """RMSprop (the EfficientNet/MobileNet recipes use eps around 1e-3 and momentum 0.9)."""

    type: Literal["rmsprop"]
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.99
    eps: PositiveFloat = 1e-8
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    centered: bool = False
    weight_decay: Annotated[float, Field(ge=0)] = 0.0


class TorchOptimizer(OptimizerBase):
    """Any ``torch.optim`` class by name, e.g. ``{type: torch, name: Adagrad, lr: 0.01, kwargs: {lr_decay: 0}}``."""

    type: Literal["torch"]
    name: str = Field(description="Class name in torch.optim, e.g. Adagrad, NAdam, RAdam, Adamax.")
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Other constructor arguments.")


Optimizer = Annotated[Union[SGD, Adam, AdamW, RMSprop, TorchOptimizer], Field(discriminator="type")]


class ScheduleBase(Section):
    """Where a schedule entry applies, and its optional linear warm-up.

    Entries of a ``schedule:`` list multiply: each scales the lr (or momentum) by its factor inside
    ``[begin, end)``, keeps its final factor after ``end``, and is 1 before ``begin``.
    """

    param: Literal["lr", "momentum", "weight_decay"] = Field(
        "lr", description="What the entry schedules (weight_decay: each group's decay times the entry's factor; "
                          "min_lr is then the final decay).")
    begin: Annotated[float, Field(ge=0)] = Field(0, description="Start, in epochs (by_epoch) or iterations.")
    end: Annotated[float, Field(gt=0)] | None = Field(None, description="End (exclusive); default: the end of the run.")
    by_epoch: bool = Field(True, description="begin/end/milestones count epochs (else iterations); values still "
                                             "change every iteration except for step-style decays.")
    warmup_epochs: Annotated[float, Field(ge=0)] = Field(0, description="Linear warm-up at the start of the entry.")
    warmup_iters: Annotated[int, Field(ge=0)] = Field(0, description="Warm-up in iterations instead of epochs.")
    warmup_start_factor: Annotated[float, Field(gt=0, le=1)] = 0.001
    update: Literal["iter", "epoch"] = Field(
        "iter", description="How often the value changes: every iteration, or at the start of each epoch only "
                            "(MMEngine's by_epoch=True without convert_to_iter_based).")

    @model_validator(mode="after")
    def _one_warmup_and_order(self) -> ScheduleBase:
        if self.warmup_epochs and self.warmup_iters:
            raise ValueError("give warmup_epochs or warmup_iters, not both")
        if self.end is not None and self.end <= self.begin:
            raise ValueError(f"end ({self.end}) must be after begin ({self.begin})")
        return self



class CosineSchedule(ScheduleBase):
    """Cosine decay from lr to ``min_lr`` (or lr x ``min_ratio``) over the entry."""

    type: Literal["cosine"]
    min_lr: Annotated[float, Field(ge=0)] = Field(0.0, description="Final value (momentum for momentum entries).")
    min_ratio: Annotated[float, Field(ge=0)] | None = Field(None, description="Final value as a fraction of the start.")


class MultiStepSchedule(ScheduleBase):
    """Multiply the lr by ``gamma`` at each milestone (epochs or iterations from the start of the run)."""

    type: Literal["multistep"]
    milestones: list[Annotated[int, Field(gt=0)]]
    gamma: Annotated[float, Field(gt=0)] = 0.1

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, milestones: list[int]) -> list[int]:
        if milestones != sorted(set(milestones)):
            raise ValueError("milestones must be strictly increasing")
        return milestones


class StepSchedule(ScheduleBase):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs (or iterations) after ``begin``."""

    type: Literal["step"]
    step_size: Annotated[int, Field(gt=0)]
    gamma: Annotated[float, Field(gt=0)] = 0.1


class LinearSchedule(ScheduleBase):
    """Linear change of the factor from ``start_factor`` to ``end_factor`` (a warm-up when it rises to 1)."""

    type: Literal["linear"]
    start_factor: Annotated[float, Field(ge=0)] = 1.0 / 3
    end_factor: Annotated[float, Field(ge=0)] = 1.0


class PolynomialSchedule(ScheduleBase):
    """(1 - progress)^power decay to ``min_lr``."""

    type: Literal["polynomial"]
    power: PositiveFloat = 1.0
    min_lr: Annotated[float, Field(ge=0)] = 0.0


class ExponentialSchedule(ScheduleBase):
    """Multiply the lr by ``gamma`` per epoch (or iteration)."""

    type: Literal["exponential"]
    gamma: PositiveFloat


class OneCycleSchedule(ScheduleBase):
    """One-cycle policy (Smith, 2018): from lr/div_factor up to lr, then down to lr/(div_factor x final_div_factor).

    With ``cycle_momentum`` the momentum moves the opposite way, between ``max_momentum`` and ``base_momentum``.
    """

    type: Literal["onecycle"]
    pct_start: Annotated[float, Field(gt=0, lt=1)] = 0.3
    div_factor: PositiveFloat = 25.0
    final_div_factor: PositiveFloat = 1e4
    anneal: Literal["cos", "linear"] = "cos"
    cycle_momentum: bool = True
    base_momentum: Annotated[float, Field(ge=0, lt=1)] = 0.85
    max_momentum: Annotated[float, Field(ge=0, lt=1)] = 0.95


class ConstantSchedule(ScheduleBase):
    """Keep the lr at lr x ``factor`` (after the optional warm-up) inside the window; back to lr after ``end``."""

    type: Literal["constant"]
    factor: Annotated[float, Field(gt=0)] = 1.0


Schedule = Annotated[
    Union[CosineSchedule, MultiStepSchedule, StepSchedule, LinearSchedule, PolynomialSchedule, ExponentialSchedule,
          OneCycleSchedule, ConstantSchedule],
    Field(discriminator="type"),
]


class CrossEntropyLoss(Section):
    """Softmax cross-entropy."""

    type: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    class_weights: list[Annotated[float, Field(ge=0)]] | None = Field(None, description="One weight per class.")


class FocalLoss(Section):
    """Softmax focal loss, -alpha_t (1 - p_t)^gamma log p_t (Lin et al., 2017), for class imbalance."""

    type: Literal["focal"]
    gamma: Annotated[float, Field(ge=0)] = 2.0
    class_weights: list[Annotated[float, Field(ge=0)]] | None = Field(None, description="alpha_t per class.")


class BinaryCrossEntropyLoss(Section):
    """Per-class sigmoid cross-entropy for multi-label targets."""

    type: Literal["bce"]
    pos_weight: list[PositiveFloat] | None = Field(None, description="Weight of positives, one per class.")
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0


class AsymmetricLoss(Section):
    """Asymmetric loss for multi-label data (Ridnik et al., 2021): down-weights easy negatives."""

    type: Literal["asymmetric"]
    gamma_pos: Annotated[float, Field(ge=0)] = 0.0
    gamma_neg: Annotated[float, Field(ge=0)] = 4.0
    clip: Annotated[float, Field(ge=0, lt=1)] = 0.05
    eps: PositiveFloat = 1e-8


Loss = Annotated[Union[CrossEntropyLoss, FocalLoss, BinaryCrossEntropyLoss, AsymmetricLoss],
                 Field(discriminator="type")]


# --------------------------------------------------------------------------- runtime


class EmaConfig(Section):
    """An exponential moving average of the weights, validated and saved next to the model (``best_ema.pt``)."""

    decay: Annotated[float, Field(gt=0, lt=1)] = 0.9998
    warmup: bool = Field(False, description="Use min(decay, (1 + n) / (10 + n)) at update n, so early averages "
                                            "are not dominated by the random init (off by default, as in timm's "
                                            "ModelEmaV3 and MMPretrain's EMAHook).")
    interval: Annotated[int, Field(gt=0)] = Field(1, description="Optimizer steps between updates.")


class RuntimeConfig(Section):
    """How the run is executed and recorded."""

    epochs: Annotated[int, Field(gt=0)] = 10
    work_dir: str | None = Field(
        None, description="Run folder; default: the first free of runs/<recipe name>, -2, -3... A named folder that "
                          "holds a run is never overwritten (see --resume and --overwrite).")
    seed: int = 0
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto, cpu, cuda or cuda:N.")
    amp: bool | Literal["fp16", "bf16"] = Field(
        True, description="Mixed precision: fp16 (true; CUDA only, with a gradient scaler), bf16, or false.")
    channels_last: bool = Field(True, description="channels_last memory format on CUDA; ignored on the CPU.")
    compile: bool | Literal["default", "reduce-overhead", "max-autotune"] = Field(
        False, description="torch.compile the model for training (true: the default mode).")
    sync_bn: bool = Field(False, description="SyncBatchNorm across processes in distributed training (CUDA).")
    auto_scale_lr: bool = Field(False, description="Scale optim.lr by global batch / optim.base_batch_size.")
    deterministic: bool = False
    tensorboard: bool = Field(False, description="Also write TensorBoard event files to <run>/tensorboard "
                                                 "(the same as listing tensorboard in loggers).")
    loggers: list[Literal["jsonl", "tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=lambda: ["jsonl"],
        description="Where metrics go: jsonl (metrics.jsonl, always on), tensorboard, mlflow (MLFLOW_TRACKING_URI "
                    "or ./mlruns), wandb (offline unless logged in).")
    experiment: str | None = Field(None, description="MLflow experiment / W&B project (default: clsctl).")
    log_interval: Annotated[int, Field(gt=0)] = Field(20, description="Iterations between metrics.jsonl records.")
    val_interval: Annotated[int, Field(gt=0)] = Field(1, description="Epochs between validations.")
    checkpoint_interval: Annotated[int, Field(gt=0)] = Field(1, description="Epochs between last.pt saves.")
    keep_checkpoints: Annotated[int, Field(ge=-1)] = Field(
        0, description="Also save epoch_N.pt at each checkpoint and keep the newest N (-1: all, 0: none).")
    save_best: str | None = Field(
        "auto", description="Validation metric that picks best.pt ('auto': the first one; null: no best.pt).")
    save_best_rule: Literal["greater", "less"] | None = Field(
        None, description="Whether larger is better; default: less for names containing 'loss', else greater.")
    load_from: str | None = Field(None, description="Start from these weights (checkpoint or state dict); "
                                                    "unlike resume, optimizer, schedule and epoch start fresh.")
    recovery_interval: Duration = Field(
        "10m", description="Save the exact position (recovery.pt) at most this often inside epochs, so a crash or "
                           "kill -9 loses at most this much; 0 turns it off. e.g. 10m, 30s, 1h.")
    requeue: bool = Field(False, description="Under Slurm, SIGUSR1 (sbatch --signal=USR1@90) saves, stops and requeues "
                                             "the job (scontrol requeue), which then resumes by itself.")
    dist_timeout: Duration = Field(
        "30m", description="How long a process of a distributed run waits for the others at a collective (rank 0 "
                           "writes checkpoints while they wait) before the run fails; e.g. 30m, 1h, 600.")


class Recipe(Section):
    """A complete, validated training recipe."""

    name: str | None = Field(None, description="Name of the recipe (default: its file name); runs go to "
                                               "runs/<name> unless runtime.work_dir says otherwise.")
    model: ModelConfig
    data: DataConfig
    optim: Optimizer
    schedule: Schedule | list[Schedule] = Field(
        default_factory=lambda: ConstantSchedule(type="constant"),
        description="One schedule, or a list whose entries multiply (MMEngine-style begin/end windows).")
    loss: Loss = Field(default_factory=CrossEntropyLoss)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    ema: EmaConfig | None = Field(None, description="Keep and validate an EMA of the weights.")

    @field_validator("loss", mode="before")
    @classmethod
    def _default_loss_type(cls, value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            return {"type": "cross_entropy", **value}
        return value

    @property
    def schedules(self) -> list[Schedule]:
        """The schedule entries, a single entry as a one-element list."""
        return list(self.schedule) if isinstance(self.schedule, list) else [self.schedule]

    @model_validator(mode="after")
    def _milestones_within_run(self) -> Recipe:
        for entry in self.schedules:
            if isinstance(entry, MultiStepSchedule) and entry.by_epoch and entry.milestones[-1] > self.runtime.epochs:
                raise ValueError(
                    f"schedule.milestones: last milestone {entry.milestones[-1]} is after the last epoch "
                    f"({self.runtime.epochs})"
                )
        if self.runtime.auto_scale_lr and self.optim.base_batch_size is None:
            raise ValueError("runtime.auto_scale_lr needs optim.base_batch_size (the global batch lr is meant for)")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain data (for YAML, JSON and checkpoints)."""
        return self.model_dump(mode="json")
