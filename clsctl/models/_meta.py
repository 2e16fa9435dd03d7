"""Per-variant model specs, kept as typed data so tests can recompute and check them.

A :class:`ModelMeta` (the spec of one registered variant) holds what a user and the tools need: evaluation
preprocessing (input size, mean/std, crop ratio, interpolation), counts (parameters, FLOPs, with their
sources), the published weights (:class:`PretrainedWeights`), where things are inside the built module
(:class:`ModelLayout`: classifier, pooling, stages, first conv, CAM layer, layer groups for layer-wise lr
decay), and where a model from timm or the Hugging Face Hub came from (:class:`TimmOrigin`, :class:`HubOrigin`).
There are no string-keyed extras: every reader uses a typed field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_PCT = 0.875  # resize 256, crop 224: torchvision's, timm's and MMPretrain's default evaluation crop

CamReshape = Literal["vit", "swin"]


@dataclass(frozen=True)
class LayerGroups:
    """Which parameters form which layer for layer-wise lr decay (the role of timm's ``group_matcher``).

    Parameters whose name matches ``embed`` are layer 0, those in block ``i`` (``blocks``' first group) layer
    ``i + 1``, everything else (final norm, head) layer ``blocks + 1``.

    Attributes:
        blocks: Regular expression searched in a parameter name; its first group is the block index.
        embed: Regular expression searched in a parameter name that marks the embedding end (layer 0); None:
            no parameter is in layer 0.
    """

    blocks: str
    embed: str | None = None

    def layer_ids(self, names: Sequence[str]) -> tuple[dict[str, int], int] | None:
        """Layer of each of ``names`` and the number of blocks among them; None when no name is in a block."""
        block_re = re.compile(self.blocks)
        embed_re = re.compile(self.embed) if self.embed else None
        blocks = {name: int(m.group(1)) for name in names if (m := block_re.search(name))}
        if not blocks:
            return None
        count = max(blocks.values()) + 1
        ids = {}
        for name in names:
            if name in blocks:
                ids[name] = blocks[name] + 1
            elif embed_re is not None and embed_re.search(name):
                ids[name] = 0
            else:
                ids[name] = count + 1
        return ids, count


# Names that mark the embedding end of a ViT-style model whose layout is not recorded (timm models).
_EMBED_NAMES = ("cls_token", "class_token", "pos_embed", "pos_embedding", "patch_embed", "conv_proj", "dist_token",
                "mask_token", "register_tokens")
NUMBERED_BLOCKS = LayerGroups(blocks=r"(?:^|\.)(?:blocks|layers|encoder_layer_)\.?(\d+)\.",
                              embed=r"(?:^|\.)(?:" + "|".join(_EMBED_NAMES) + r")(?:\.|$)")
"""Generic groups for models named like timm's (``blocks.N``, ``layers.N``, ``encoder_layer_N``)."""


def _tuple_stages(stages: Sequence[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(paths) for paths in stages)


@dataclass(frozen=True)
class ModelLayout:
    """Where things are inside a built model, as dotted module (or parameter) paths.

    Attributes:
        classifier: The final classifier (a linear layer or a small block ending in one).
        pool: The global pooling module (output ``(N, C, 1, 1)``) a recipe's neck may replace; None when the
            family has none that can be swapped.
        stages: The stem's paths, then each stage's in forward order (``frozen_stages`` freezes a prefix).
        first_conv: The first convolution (timm's ``first_conv``), where recorded.
        cam_layer: The default Grad-CAM target layer.
        cam_reshape: How that layer's output becomes a feature map: ``vit`` (tokens) or ``swin`` (NHWC).
        layer_groups: Layers for layer-wise lr decay; None where the family has no block structure for it.
    """

    classifier: str = "fc"
    pool: str | None = None
    stages: tuple[tuple[str, ...], ...] = ()
    first_conv: str | None = None
    cam_layer: str | None = None
    cam_reshape: CamReshape | None = None
    layer_groups: LayerGroups | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", _tuple_stages(self.stages))


@dataclass(frozen=True)
class PretrainedWeights:
    """Published weights of a variant.

    Attributes:
        url: Where they are (``https://...`` or ``hf-hub:<org>/<repo>``).
        source: Who publishes them and which set (``torchvision IMAGENET1K_V1``, ``timm``, ``hf-hub``).
        class_names: Name of their label set (``imagenet-1k``), if a known one.
        class_list: Their class names, where the publisher lists them (clsctl models on the Hub).
    """

    url: str
    source: str = ""
    class_names: str | None = None
    class_list: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_list", tuple(self.class_list))

    @property
    def file_name(self) -> str:
        """The last part of the URL (torch.hub's cache file name)."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class TimmOrigin:
    """A ``timm/<name>`` model: what timm's ``pretrained_cfg`` says.

    Attributes:
        name: timm's model name (with its ``.tag``).
        hf_hub_id: Hub repository of the pretrained weights, if they are on the Hub.
        hf_hub_filename: File of the weights in that repository, when not the default.
        crop_mode: timm's evaluation crop mode when not ``center`` (recorded only: clsctl crops the centre).
    """

    name: str
    hf_hub_id: str | None = None
    hf_hub_filename: str | None = None
    crop_mode: str | None = None


@dataclass(frozen=True)
class HubOrigin:
    """A ``hf-hub:<org>/<repo>`` model: which library published it and what its ``config.json`` holds.

    Attributes:
        repo: ``<org>/<repo>``.
        library: ``clsctl`` (a clsctl export) or ``timm``.
        model_name: The clsctl variant (clsctl models) or timm architecture (timm models), where given.
        preprocessing: The stored evaluation preprocessing of a clsctl model (a checkpoint's ``preprocessing``).
    """

    repo: str
    library: Literal["clsctl", "timm"]
    model_name: str | None = None
    preprocessing: Mapping[str, Any] | None = field(default=None, hash=False)  # a dict: left out of the hash


@dataclass(frozen=True)
class ModelMeta:
    """The spec of a registered variant: what a user (and the tools) need to know about it.

    Attributes:
        name: Registered name.
        family: Family name (file it lives in), e.g. ``resnet``.
        input_size: Default (height, width) the variant is meant for.
        mean: Per-channel mean in [0, 1] for normalisation, RGB order.
        std: Per-channel standard deviation in [0, 1], RGB order.
        num_params: Parameter count with the default number of classes.
        num_classes: Default number of classes (1000 for ImageNet variants).
        flops: Fused multiply-adds at ``input_size`` (fvcore's convention), None when not recorded.
        param_source: Where ``num_params`` was published.
        flops_source: Where ``flops`` comes from (torchvision's metadata, an fvcore count), where recorded.
        paper_params: The (rounded) parameter count a paper or table states, as printed (``"25.7"``).
        deploy_params: Parameter count of the deploy form (re-parameterizable variants).
        deploy_flops: Multiply-adds of the deploy form.
        paper_deploy_params: The published deploy-form count, as printed.
        mmpretrain_deploy_params: MMPretrain's published deploy-form count, as printed.
        reparameterizable: Whether the variant has a training form that folds into a deploy form.
        eval_resize: Shorter edge an image is resized to before the centre crop of ``input_size`` when
            evaluating the published weights (torchvision's ``resize_size``); None: ``input_size / 0.875``.
        interpolation: Resampling of that resize (``bilinear``, ``bicubic``, ...).
        weights: The published weights, None when there are none.
        layout: Where the classifier, pooling, stages, CAM layer and layer groups are in the built model.
        timm: Origin of a ``timm/<name>`` model.
        hub: Origin of a ``hf-hub:<org>/<repo>`` model.
    """

    name: str
    family: str
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_params: int | None = None
    num_classes: int = 1000
    flops: float | None = None
    param_source: str = ""
    flops_source: str = ""
    paper_params: str | None = None
    deploy_params: int | None = None
    deploy_flops: float | None = None
    paper_deploy_params: str | None = None
    mmpretrain_deploy_params: str | None = None
    reparameterizable: bool = False
    eval_resize: int | None = None
    interpolation: str = "bilinear"
    weights: PretrainedWeights | None = None
    layout: ModelLayout = field(default_factory=ModelLayout)
    timm: TimmOrigin | None = None
    hub: HubOrigin | None = None

    @property
    def has_pretrained(self) -> bool:
        """Whether published weights exist for this variant."""
        return self.weights is not None

    @property
    def pretrained_url(self) -> str | None:
        """URL of the published weights, None when there are none."""
        return None if self.weights is None else self.weights.url

    @property
    def class_names(self) -> str | None:
        """Name of the label set the published weights use (``imagenet-1k``), if any."""
        return None if self.weights is None else self.weights.class_names

    @property
    def eval_resize_size(self) -> int:
        """The shorter edge before the evaluation centre crop: ``eval_resize``, else the zoos' 87.5 % crop."""
        if self.eval_resize is not None:
            return self.eval_resize
        return int(round(min(self.input_size) / DEFAULT_CROP_PCT))

    @property
    def crop_pct(self) -> float:
        """Fraction of the resized image the evaluation crop keeps (timm's ``crop_pct``)."""
        return min(self.input_size) / self.eval_resize_size

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists instead of tuples, nested dicts for the parts) for JSON, YAML and checkpoints."""
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelMeta:
        """The spec back from :meth:`to_dict`'s output, or from the flat dict with an ``extra`` entry that
        earlier versions wrote (``pretrained_url``, ``class_names`` and the ``extra`` keys become typed fields;
        unknown keys are ignored)."""
        data = dict(data)
        if "extra" in data or "pretrained_url" in data:
            data = _from_flat(data)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("input_size", "mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        parts = {"weights": PretrainedWeights, "timm": TimmOrigin, "hub": HubOrigin}
        for key, part in parts.items():
            if isinstance(values.get(key), Mapping):
                values[key] = part(**values[key])
        if isinstance(values.get("layout"), Mapping):
            layout = dict(values["layout"])
            if isinstance(layout.get("layer_groups"), Mapping):
                layout["layer_groups"] = LayerGroups(**layout["layer_groups"])
            values["layout"] = ModelLayout(**layout)
        return cls(**values)


"""The spec of a variant; ``ModelMeta`` is the name the readers use."""


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_LAYOUT_KEYS = ("classifier", "pool", "stages", "first_conv", "cam_layer", "cam_reshape")
_FLAT_KEYS = ("flops_source", "paper_params", "deploy_params", "deploy_flops", "paper_deploy_params",
              "mmpretrain_deploy_params")


def _from_flat(data: dict[str, Any]) -> dict[str, Any]:
    """An earlier version's flat dict (``pretrained_url``, ``class_names``, ``extra``) in today's shape."""
    extra = dict(data.pop("extra", None) or {})
    url, class_names = data.pop("pretrained_url", None), data.pop("class_names", None)
    out = {**data, **{k: extra[k] for k in _FLAT_KEYS if k in extra}}
    out["layout"] = {k: extra[k] for k in _LAYOUT_KEYS if k in extra}
    if url is not None:
        source = f"torchvision {extra['torchvision_weights']}" if "torchvision_weights" in extra else ""
        out["weights"] = {"url": url, "source": source, "class_names": class_names,
                          "class_list": list(extra.get("class_list") or [])}
    if "timm_name" in extra:
        out["timm"] = {"name": extra["timm_name"], "hf_hub_id": extra.get("hf_hub_id"),
                       "hf_hub_filename": extra.get("hf_hub_filename"), "crop_mode": extra.get("crop_mode")}
    if "hub_library" in extra:
        out["hub"] = {"repo": str(url or "").removeprefix("hf-hub:"), "library": extra["hub_library"],
                      "model_name": extra.get("architecture"), "preprocessing": extra.get("preprocessing")}
    return out
