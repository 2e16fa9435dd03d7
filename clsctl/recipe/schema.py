"""The recipe: pydantic models for every section, strict about unknown keys.

Datasets, transforms, optimizers, schedules and losses are discriminated unions on ``type``, so each entry
is validated against exactly the options of its kind.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PositiveFloat = Annotated[float, Field(gt=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
Size = Union[Annotated[int, Field(gt=0)], tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]]]
Interpolation = Literal["nearest", "bilinear", "bicubic", "lanczos"]


class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=False, protected_namespaces=())


# --------------------------------------------------------------------------- model


class ModelConfig(Section):
    """Which network to build and which weights to start from."""

    name: str = Field(description="Registered model name, e.g. resnet50 (see `clsctl list-models`).")
    num_classes: Annotated[int, Field(gt=0)] | None = Field(None, description="Default: the dataset's class count.")
    pretrained: bool = Field(False, description="Start from the published ImageNet weights.")
    weights: str | None = Field(None, description="Local weights file (state dict or clsctl checkpoint).")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Family options, e.g. cifar_stem, frozen_stages.")

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from clsctl.models import MODELS
        from clsctl.registry import unknown_name_message

        if name not in MODELS:
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


Transform = Annotated[
    Union[Resize, RandomResizedCrop, CenterCrop, RandomCrop, RandomHorizontalFlip, RandomVerticalFlip, ColorJitter,
          RandomGrayscale, RandomRotation],
    Field(discriminator="type"),
]


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


Dataset = Annotated[Union[ImageFolderDataset, AnnotationFileDataset], Field(discriminator="type")]


class LoaderConfig(Section):
    """DataLoader settings shared by all splits."""

    batch_size: Annotated[int, Field(gt=0)] = Field(32, description="Images per step per device.")
    num_workers: Annotated[int, Field(ge=0)] = 2
    pin_memory: bool | None = Field(None, description="Default: on when training on CUDA.")
    persistent_workers: bool = True
    drop_last: bool = False


class DataConfig(Section):
    """Datasets of each split and how they are loaded."""

    train: Dataset | None = None
    val: Dataset | None = None
    test: Dataset | None = Field(None, description="Default: the val dataset.")
    loader: LoaderConfig = Field(default_factory=LoaderConfig)
    mean: tuple[float, float, float] | None = Field(None, description="Default: the model's (ImageNet for most).")
    std: tuple[PositiveFloat, PositiveFloat, PositiveFloat] | None = None


# --------------------------------------------------------------------------- optimizer, schedule, loss


class SGD(Section):
    """Stochastic gradient descent with momentum."""

    type: Literal["sgd"]
    lr: PositiveFloat
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    nesterov: bool = False


class AdamW(Section):
    """Adam with decoupled weight decay."""

    type: Literal["adamw"]
    lr: PositiveFloat
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    weight_decay: Annotated[float, Field(ge=0)] = 0.05


Optimizer = Annotated[Union[SGD, AdamW], Field(discriminator="type")]


class Warmup(Section):
    """Shared warm-up options: the lr rises linearly from ``warmup_start_factor`` x lr."""

    warmup_epochs: Annotated[float, Field(ge=0)] = 0
    warmup_start_factor: Annotated[float, Field(gt=0, le=1)] = 0.001


class CosineSchedule(Warmup):
    """Cosine decay from lr to ``min_lr`` over the run, per iteration."""

    type: Literal["cosine"]
    min_lr: Annotated[float, Field(ge=0)] = 0.0


class MultiStepSchedule(Warmup):
    """Multiply the lr by ``gamma`` at each epoch in ``milestones``."""

    type: Literal["multistep"]
    milestones: list[Annotated[int, Field(gt=0)]]
    gamma: Annotated[float, Field(gt=0)] = 0.1

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, milestones: list[int]) -> list[int]:
        if milestones != sorted(set(milestones)):
            raise ValueError("milestones must be strictly increasing")
        return milestones


class ConstantSchedule(Warmup):
    """Keep the lr constant (after the optional warm-up)."""

    type: Literal["constant"]


Schedule = Annotated[Union[CosineSchedule, MultiStepSchedule, ConstantSchedule], Field(discriminator="type")]


class CrossEntropyLoss(Section):
    """Softmax cross-entropy."""

    type: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0


Loss = Annotated[Union[CrossEntropyLoss], Field(discriminator="type")]


# --------------------------------------------------------------------------- runtime


class RuntimeConfig(Section):
    """How the run is executed and recorded."""

    epochs: Annotated[int, Field(gt=0)] = 10
    work_dir: str | None = Field(None, description="Run folder; default runs/<recipe name>.")
    seed: int = 0
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto, cpu, cuda or cuda:N.")
    amp: bool = Field(True, description="Mixed precision (fp16) on CUDA; ignored on the CPU.")
    channels_last: bool = Field(True, description="channels_last memory format on CUDA; ignored on the CPU.")
    deterministic: bool = False
    log_interval: Annotated[int, Field(gt=0)] = Field(20, description="Iterations between metrics.jsonl records.")
    val_interval: Annotated[int, Field(gt=0)] = Field(1, description="Epochs between validations.")
    checkpoint_interval: Annotated[int, Field(gt=0)] = Field(1, description="Epochs between last.pt saves.")


class Recipe(Section):
    """A complete, validated training recipe."""

    model: ModelConfig
    data: DataConfig
    optim: Optimizer
    schedule: Schedule = Field(default_factory=lambda: ConstantSchedule(type="constant"))
    loss: Loss = Field(default_factory=CrossEntropyLoss)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @field_validator("loss", mode="before")
    @classmethod
    def _default_loss_type(cls, value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            return {"type": "cross_entropy", **value}
        return value

    @model_validator(mode="after")
    def _milestones_within_run(self) -> Recipe:
        if isinstance(self.schedule, MultiStepSchedule) and self.schedule.milestones[-1] > self.runtime.epochs:
            raise ValueError(
                f"schedule.milestones: last milestone {self.schedule.milestones[-1]} is after the last epoch "
                f"({self.runtime.epochs})"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain data (for YAML, JSON and checkpoints)."""
        return self.model_dump(mode="json")
