"""How an image becomes a model input when a trained model is used: one :class:`Preprocessing`.

It is made from a recipe (the evaluation pipeline of its ``test`` split, else ``val``), from a model's metadata
(the published weights' resize, crop and interpolation) or from a checkpoint or export (which store it), and it
is the only thing that builds evaluation transforms: ``clsctl test``, ``infer``, ``vis-cam``, ``report``,
exports and the server all prepare images through it, and training's validation uses the very same steps.

``--set`` overrides reach it through :meth:`Preprocessing.with_overrides`: ``data.mean``, ``data.std``,
``data.channel_order``, ``data.<split>.pipeline...`` (the split it was made from) and the shorthand
``preprocessing.resize``, ``.crop``, ``.crop_pct``, ``.interpolation``, ``.mean``, ``.std``,
``.channel_order``. Keys it does not hold are handed back, for the caller to honour or refuse.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from clsctl.errors import RecipeError
from clsctl.recipe import schema as S

EVAL_SPLITS = ("test", "val")
DEFAULT_CROP_PCT = 0.875  # the zoos' centre crop: 224 of 256
SHORTHAND_KEYS = ("resize", "crop", "crop_pct", "interpolation", "mean", "std", "channel_order")
_SIZED_STEPS = (S.Resize, S.CenterCrop, S.EfficientNetCenterCrop, S.RandomResizedCrop, S.RandomCrop,
                S.EfficientNetRandomCrop)


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def validate_steps(entries: Sequence[Any], where: str = "pipeline") -> list[S.Transform]:
    """Validated transform entries from plain data (recipe or checkpoint form).

    Raises:
        RecipeError: An entry that is not a transform, naming it (``where.N``).
    """
    from pydantic import TypeAdapter, ValidationError

    adapter = TypeAdapter(list[S.Transform])
    try:
        return adapter.validate_python(list(entries))
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            index = next((str(part) for part in error["loc"] if isinstance(part, int)), "")
            lines.append(f"{where}.{index}: {error['msg']} (got {error.get('input')!r:.60})" if index
                         else f"{where}: {error['msg']}")
        raise RecipeError(lines[0], details=lines[1:]) from None


@dataclass(frozen=True)
class Preprocessing:
    """The evaluation preprocessing of a model: image steps on the decoded uint8 image, then ``x / 255``,
    normalisation by ``mean``/``std`` (RGB order) and the channel order the model takes.

    Attributes:
        steps: The image steps (validated recipe transform entries: resize, crop, ...), in order.
        mean: Per-channel mean of [0, 1] pixels, RGB.
        std: Per-channel standard deviation, RGB.
        input_size: ``(height, width)`` the model takes (what the steps produce).
        channel_order: ``rgb`` or ``bgr``.
        split: The recipe split the steps come from (``test``, ``val``), None when they come from the model's
            metadata or a default.
        overrides: The ``--set`` assignments applied to it, in order.
    """

    steps: tuple[S.Transform, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: tuple[int, int]
    channel_order: str = "rgb"
    split: str | None = None
    overrides: tuple[str, ...] = field(default=(), compare=False)

    # ------------------------------------------------------------------ typed views of the steps

    @property
    def resize(self) -> int | tuple[int, int] | None:
        """The first resize's size: an int is the shorter edge (``resize_edge``'s edge), a pair ``(h, w)``."""
        for step in self.steps:
            if isinstance(step, (S.Resize, S.ResizeEdge)):
                return step.size if isinstance(step.size, int) else _pair(step.size)
        return None

    @property
    def crop(self) -> tuple[int, int] | None:
        """The last centre crop's ``(h, w)``, None without one."""
        for step in reversed(self.steps):
            if isinstance(step, (S.CenterCrop, S.EfficientNetCenterCrop)):
                return _pair(step.size)
        return None

    @property
    def interpolation(self) -> str:
        """Resampling of the resize (``bilinear`` when there is none)."""
        for step in self.steps:
            if isinstance(step, (S.Resize, S.ResizeEdge, S.EfficientNetCenterCrop)):
                return str(step.interpolation)
        return "bilinear"

    @property
    def crop_pct(self) -> float | None:
        """Fraction of the resized shorter edge the centre crop keeps (timm's ``crop_pct``); None without
        a resize of the shorter edge followed by a centre crop."""
        for step in self.steps:
            if isinstance(step, S.EfficientNetCenterCrop):
                return step.size / (step.size + step.crop_padding)
        crop, resize = self.crop, self.resize
        if crop is None or not isinstance(resize, int):
            return None
        return min(crop) / resize

    def describe(self) -> str:
        """One line: ``resize 36 (bilinear) -> centre crop 32x32, mean [...], std [...]``."""
        parts = []
        for step in self.steps:
            data = step.model_dump(mode="json")
            kind = data.pop("type")
            args = ", ".join(f"{k}={v}" for k, v in data.items())
            parts.append(f"{kind}({args})")
        mean = ", ".join(f"{v:.4g}" for v in self.mean)
        std = ", ".join(f"{v:.4g}" for v in self.std)
        order = "" if self.channel_order == "rgb" else f", {self.channel_order.upper()}"
        return f"{' -> '.join(parts) or 'none'}; mean [{mean}], std [{std}]{order}"

    # ------------------------------------------------------------------ makers

    @classmethod
    def standard(cls, input_size: Sequence[int], *, mean: Sequence[float], std: Sequence[float],
                 crop_pct: float | None = DEFAULT_CROP_PCT, resize: int | None = None,
                 interpolation: str = "bilinear", channel_order: str = "rgb") -> Preprocessing:
        """Resize the shorter edge, then centre-crop ``input_size`` (torchvision's and timm's evaluation
        transform); ``crop_pct=None`` and no ``resize``: resize straight to ``input_size``.

        Args:
            input_size: ``(height, width)`` of the model input.
            mean: Normalisation mean, RGB.
            std: Normalisation standard deviation, RGB.
            crop_pct: Shorter edge = ``floor(min(input_size) / crop_pct)`` (timm's rule) unless ``resize``.
            resize: Shorter edge before the crop.
            interpolation: Resampling of the resize.
            channel_order: ``rgb`` or ``bgr``.
        """
        height, width = _pair(input_size)
        if resize is None and crop_pct is None:
            steps: list[S.Transform] = [S.Resize(type="resize", size=(height, width), interpolation=interpolation)]
        else:
            edge = resize if resize is not None else math.floor(min(height, width) / float(crop_pct))
            steps = [S.Resize(type="resize", size=int(edge), interpolation=interpolation),
                     S.CenterCrop(type="center_crop", size=(height, width))]
        return cls(tuple(steps), _three(mean), _three(std), (height, width), channel_order)

    @classmethod
    def from_meta(cls, meta: Any) -> Preprocessing:
        """The evaluation transform of a registered model's published weights (its
        :class:`~clsctl.models.ModelMeta`): shorter edge to ``meta.eval_resize_size`` with
        ``meta.interpolation``, centre crop of ``meta.input_size`` (torchvision's ``Weights.transforms()``)."""
        return cls.standard(meta.input_size, mean=meta.mean, std=meta.std, resize=int(meta.eval_resize_size),
                            interpolation=str(meta.interpolation))

    @classmethod
    def from_recipe(cls, recipe: S.Recipe, split: str | None = None) -> Preprocessing:
        """The evaluation preprocessing a recipe trains toward: the pipeline of ``split`` (default: ``test``,
        else ``val``); an empty pipeline, or no evaluation split, resizes to the model's input size (what
        training's validation does). Mean and std are the recipe's, else the model's."""
        from clsctl.models import model_info

        meta = model_info(recipe.model.name)
        mean = recipe.data.mean or meta.mean
        std = recipe.data.std or meta.std
        if split is None or (split == "test" and recipe.data.test is None):  # test falls back to val
            split = next((name for name in EVAL_SPLITS if getattr(recipe.data, name) is not None), split)
        config = getattr(recipe.data, split) if split is not None else None
        steps = list(config.pipeline) if config is not None and hasattr(config, "pipeline") else []
        if not steps:
            steps = [S.Resize(type="resize", size=_pair(meta.input_size))]
        return cls(tuple(steps), _three(mean), _three(std), output_size(steps, meta.input_size),
                   recipe.data.channel_order, split if config is not None else None)

    @classmethod
    def from_dict(cls, data: Any, source: str = "checkpoint") -> Preprocessing:
        """What :meth:`to_dict` wrote (checkpoints, exports, Hub configs; also the older form without ``split``).

        Raises:
            RecipeError: Not such a mapping, naming ``source``.
        """
        if not isinstance(data, dict) or not isinstance(data.get("pipeline"), list):
            raise RecipeError(f"{source}: its preprocessing is not a mapping with a 'pipeline' list")
        try:
            steps = validate_steps(data["pipeline"], f"{source}: preprocessing.pipeline")
            mean, std = _three(data["mean"]), _three(data["std"])
            size = data.get("input_size") or output_size(steps, (224, 224))
            order = str(data.get("channel_order", "rgb"))
        except (KeyError, TypeError, ValueError) as exc:
            raise RecipeError(f"{source}: its preprocessing is incomplete ({exc})") from None
        if order not in ("rgb", "bgr") or any(v <= 0 for v in std):
            raise RecipeError(f"{source}: its preprocessing has channel_order {order!r} or a std <= 0")
        split = data.get("split") if data.get("split") in EVAL_SPLITS else None
        return cls(tuple(steps), mean, std, _pair(size), order, split)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints and exports: ``pipeline``, ``mean``, ``std``, ``channel_order``,
        ``input_size``, ``split``, plus the typed summary (``resize``, ``crop``, ``crop_pct``,
        ``interpolation``) for other tools to read."""
        resize = self.resize
        return {"pipeline": [step.model_dump(mode="json") for step in self.steps], "mean": list(self.mean),
                "std": list(self.std), "channel_order": self.channel_order, "input_size": list(self.input_size),
                "split": self.split, "resize": list(resize) if isinstance(resize, tuple) else resize,
                "crop": list(self.crop) if self.crop else None, "crop_pct": self.crop_pct,
                "interpolation": self.interpolation}

    # ------------------------------------------------------------------ transforms

    def transform(self, output: str = "uint8") -> Any:
        """Decoded image (uint8 ``(3, H, W)`` tensor, or PIL) -> model input.

        Args:
            output: ``uint8``: the image steps only, for :meth:`device_input` to normalise the batch (what
                the evaluation loop and training's validation do); ``float``: a normalised float tensor.
                A pipeline with float steps is built in full either way.
        """
        from clsctl.data.transforms import build_pipeline

        return build_pipeline(list(self.steps), self.mean, self.std, channel_order=self.channel_order,
                              output=output)

    def image_transform(self) -> Any:
        """The image steps alone (decoded image -> resized, cropped uint8 image): what tools show as "the image
        as the model sees it"."""
        from clsctl.data.transforms import build_pipeline, stage

        steps = [step for step in self.steps if stage(step) == 0]
        return build_pipeline(steps, self.mean, self.std, output="uint8")

    def device_input(self) -> Any:
        """The batch normaliser (:class:`~clsctl.data.device.DeviceInput`) matching :meth:`transform`."""
        from clsctl.data.device import DeviceInput

        return DeviceInput(self.mean, self.std, self.channel_order)

    # ------------------------------------------------------------------ overrides

    def with_overrides(self, assignments: Sequence[str]) -> tuple[Preprocessing, list[str]]:
        """Apply the ``--set`` assignments this preprocessing holds.

        Returns:
            The new preprocessing (itself when nothing applied) and the assignments it does not hold, in order.

        Raises:
            RecipeError: A value that does not validate, or a ``data.<split>.pipeline`` key of another split
                than the one the preprocessing comes from.
        """
        from clsctl.recipe.load import apply_override

        view = self._override_view()
        mine, rest, shorthand = [], [], {}
        for assignment in assignments:
            key = assignment.split("=", 1)[0].strip()
            target = self._owner(key)
            if target == "shorthand":
                shorthand[key.split(".", 1)[1]] = assignment
            elif target == "view":
                apply_override(view, assignment)
            else:
                rest.append(assignment)
                continue
            mine.append(assignment)
        if not mine:
            return self, rest
        prep = self._from_view(view)
        if shorthand:
            prep = prep._with_shorthand(shorthand)
        return replace(prep, overrides=(*self.overrides, *mine)), rest

    def _owner(self, key: str) -> str | None:
        parts = key.split(".")
        if parts[0] == "preprocessing":
            if len(parts) == 2 and parts[1] in SHORTHAND_KEYS:
                return "shorthand"
            raise RecipeError(f"--set {key}: unknown preprocessing key (known: "
                              f"{', '.join('preprocessing.' + k for k in SHORTHAND_KEYS)})")
        if parts[0] != "data" or len(parts) < 2:
            return None
        if parts[1] in ("mean", "std") or parts[1:] == ["channel_order"]:
            return "view"
        if len(parts) >= 3 and parts[1] in EVAL_SPLITS and parts[2] == "pipeline":
            if self.split is not None and parts[1] != self.split:
                raise RecipeError(f"--set {key}: this model's evaluation preprocessing comes from "
                                  f"data.{self.split}.pipeline; set data.{self.split}.pipeline... (or "
                                  f"preprocessing.resize / .crop / ...) instead")
            return "view"
        return None

    def _override_view(self) -> dict[str, Any]:
        pipeline = [step.model_dump(mode="json") for step in self.steps]
        splits = [self.split] if self.split is not None else list(EVAL_SPLITS)
        data: dict[str, Any] = {"mean": list(self.mean), "std": list(self.std), "channel_order": self.channel_order}
        for name in splits:
            data[name] = {"pipeline": copy.deepcopy(pipeline)}
        return {"data": data}

    def _from_view(self, view: dict[str, Any]) -> Preprocessing:
        data = view["data"]
        original = [step.model_dump(mode="json") for step in self.steps]
        candidates = [name for name in EVAL_SPLITS if isinstance(data.get(name), dict)]
        changed = [name for name in candidates if data[name].get("pipeline") != original] or candidates[:1]
        split = changed[0]
        entries = data[split].get("pipeline")
        if not isinstance(entries, list):
            raise RecipeError(f"--set data.{split}.pipeline: must be a list of transforms (got {entries!r})")
        steps = validate_steps(entries, f"data.{split}.pipeline")
        try:
            mean, std = _three(data["mean"]), _three(data["std"])
        except (TypeError, ValueError) as exc:
            raise RecipeError(f"--set data.mean/data.std: three numbers are needed ({exc})") from None
        if any(v <= 0 for v in std):
            raise RecipeError(f"--set data.std: every value must be positive (got {list(std)})")
        order = data.get("channel_order")
        if order not in ("rgb", "bgr"):
            raise RecipeError(f"--set data.channel_order: rgb or bgr (got {order!r})")
        return Preprocessing(tuple(steps), mean, std, output_size(steps, self.input_size), str(order), self.split,
                             self.overrides)

    def _with_shorthand(self, values: dict[str, str]) -> Preprocessing:
        import yaml

        parsed: dict[str, Any] = {}
        for key, assignment in values.items():
            raw = assignment.split("=", 1)[1] if "=" in assignment else ""
            try:
                parsed[key] = yaml.safe_load(raw) if raw.strip() else None
            except yaml.YAMLError as exc:
                raise RecipeError(f"--set preprocessing.{key}: value is not valid YAML ({exc})") from None
        try:
            crop = _pair(parsed.get("crop") or self.crop or self.input_size)
            crop_pct = parsed.get("crop_pct", None if "resize" in parsed else self.crop_pct)
            resize = parsed.get("resize", None if "crop_pct" in parsed else self.resize)
            interpolation = str(parsed.get("interpolation", self.interpolation))
            mean, std = _three(parsed.get("mean", self.mean)), _three(parsed.get("std", self.std))
            order = str(parsed.get("channel_order", self.channel_order))
        except (TypeError, ValueError) as exc:
            raise RecipeError(f"--set preprocessing.*: {exc}") from None
        if isinstance(resize, (list, tuple)):  # an exact (h, w) resize and no crop
            built = Preprocessing.standard(_pair(resize), mean=mean, std=std, crop_pct=None,
                                           interpolation=interpolation, channel_order=order)
        else:
            if crop_pct is not None and not 0 < float(crop_pct) <= 1:
                raise RecipeError(f"--set preprocessing.crop_pct: must be in (0, 1] (got {crop_pct})")
            built = Preprocessing.standard(crop, mean=mean, std=std, crop_pct=crop_pct, resize=resize,
                                           interpolation=interpolation, channel_order=order)
        validate_steps([step.model_dump(mode="json") for step in built.steps], "preprocessing")
        if order not in ("rgb", "bgr") or any(v <= 0 for v in std):
            raise RecipeError("--set preprocessing.*: channel_order is rgb or bgr, std values are positive")
        return replace(built, split=self.split)


def _three(values: Sequence[float]) -> tuple[float, float, float]:
    numbers = tuple(float(v) for v in values)
    if len(numbers) != 3:
        raise ValueError(f"expected 3 values, got {len(numbers)}")
    return numbers  # type: ignore[return-value]


def output_size(steps: Sequence[S.Transform], default: Sequence[int]) -> tuple[int, int]:
    """The ``(h, w)`` the steps produce: the size of the last step that sets one (a shorter-edge resize gives a
    square image that size), else ``default``."""
    for step in reversed(list(steps)):
        if isinstance(step, (*_SIZED_STEPS, S.ResizeEdge)):
            return _pair(step.size)
    return _pair(default)
