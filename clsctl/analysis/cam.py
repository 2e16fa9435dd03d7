"""``vis-cam``: class activation maps (pytorch-grad-cam) of a checkpoint or a registered model on one image.

The target layer and the reshape of its output to ``B x C x H x W`` maps are worked out from the model, so no
flags beyond the method are needed: the family's ``cam_layer`` metadata where it has one (last CNN stage, the last
block's input norm for ViT/DeiT, the final norm for Swin), else found with forward hooks on the actual input
(:func:`find_cam_layer`: the last feature map before global pooling for any CNN, ``timm/...`` included; the last
block's first norm for token models). The reshape follows from the layer's output shape (:func:`reshape_for`):
channels-first maps as they are, channels-last (Swin) permuted, tokens laid out on the grid their count and the
input's aspect ratio give, extra (class, distillation) tokens dropped.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clsctl.analysis._draw import caption, hstack, save_png
from clsctl.errors import ClsctlError

# Lower-case user spelling -> pytorch-grad-cam class name.
METHODS: dict[str, str] = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "gradcamplusplus": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
    "layercam": "LayerCAM",
    "hirescam": "HiResCAM",
    "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM",
}
METHOD_NAMES = ("GradCAM", "GradCAM++", "XGradCAM", "EigenCAM", "EigenGradCAM", "LayerCAM", "HiResCAM", "ScoreCAM",
                "AblationCAM")
DISPLAY_MIN_SIDE = 224  # small inputs (32x32 test models, CIFAR) are drawn larger so the map can be seen


@dataclass
class CamResult:
    """What :func:`visualize_cam` computed and wrote."""

    save_path: Path
    method: str
    target_layers: list[str]
    predicted: int
    predicted_name: str
    score: float
    target: int
    target_name: str
    cam: np.ndarray  # H x W in [0, 1], at the network's input resolution
    warning: str | None = None


def method_class(method: str) -> type:
    """The pytorch-grad-cam class of a case-insensitive method name (``gradcam++`` and ``GradCAMPlusPlus`` alike)."""
    import pytorch_grad_cam

    key = method.lower().replace("-", "").replace("_", "")
    if key not in METHODS:
        raise ClsctlError(f"unknown CAM method '{method}'; choose one of {', '.join(METHOD_NAMES)}")
    return getattr(pytorch_grad_cam, METHODS[key])


def list_layers(model: Any) -> list[tuple[str, str]]:
    """``(name, module type)`` of every sub-module, for choosing ``--target-layers``."""
    return [(name, type(module).__name__) for name, module in model.named_modules() if name]


@dataclass
class LayerOutput:
    """One sub-module's output in a forward pass, in the order the modules finished."""

    name: str
    module: Any
    shape: tuple[int, ...]


def record_outputs(model: Any, tensor: Any) -> tuple[Any, dict[str, LayerOutput], list[LayerOutput]]:
    """Run ``model`` on ``tensor`` with a forward hook on every sub-module.

    Returns:
        The model's output, each module's (last) tensor output by name, and all outputs in finishing order.
    """
    order: list[LayerOutput] = []
    handles = []

    def hook_for(name: str) -> Callable:
        def hook(module: Any, _inputs: Any, output: Any) -> None:
            if hasattr(output, "shape") and hasattr(output, "dim"):
                order.append(LayerOutput(name, module, tuple(int(n) for n in output.shape)))

        return hook

    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(hook_for(name)))
        result = model(tensor)
    finally:
        for handle in handles:
            handle.remove()
    by_name = {out.name: out for out in order}
    return result, by_name, order


def _is_pool(out: LayerOutput) -> bool:
    """A global pooling module: named ``*Pool*``, output ``B x C`` or ``B x C x 1 x 1``."""
    if "pool" not in type(out.module).__name__.lower():
        return False
    return len(out.shape) == 2 or (len(out.shape) == 4 and out.shape[2] == out.shape[3] == 1)


def _inside(name: str, parent: str) -> bool:
    return name == parent or name.startswith(parent + ".")


def find_cam_layer(order: Sequence[LayerOutput]) -> str:
    """The module to explain, from the outputs of one forward pass (see :func:`record_outputs`).

    CNNs (any, ``timm/...`` included): the last module with a 4-D output before the global pooling (the last
    pooling module whose output is ``B x C x 1 x 1`` or ``B x C``; without one, before the classifier).
    Pooling modules that keep a spatial size (VGG's 7x7 adaptive pool) are not chosen. Token models (ViT, DeiT,
    3-D Swin): when ``B x N x C`` outputs follow the last feature map, the first norm of the last block (blocks:
    the last container whose children are modules of one type that all output the same token shape), so that
    patch tokens still reach the class token through the last attention; else the output of the block before it.

    Raises:
        ClsctlError: No module has a 4-D or token output.
    """
    pools = [i for i, out in enumerate(order) if _is_pool(out)]
    end = len(order)
    if pools:
        end = pools[-1]
        pool_name = order[end].name
        while end > 0 and _inside(order[end - 1].name, pool_name):
            end -= 1
    before = order[:end]
    maps = [i for i, out in enumerate(before)
            if len(out.shape) == 4 and "pool" not in type(out.module).__name__.lower()]
    tokens = [i for i, out in enumerate(before) if len(out.shape) == 3 and out.shape[1] > 1]
    if tokens and (not maps or tokens[-1] > maps[-1]):
        return _token_block_layer(before)
    if not maps:
        raise ClsctlError("cannot find a feature map to explain in this model; name one with --target-layers "
                          "(see --preview-model)")
    return before[maps[-1]].name


def _token_block_layer(order: Sequence[LayerOutput]) -> str:
    by_name = {out.name: out for out in order}
    blocks: list[str] | None = None
    for out in order:  # finishing order: the last qualifying container wins
        named = list(out.module.named_children())
        children = [f"{out.name}.{child}" for child, _ in named]
        shapes = {by_name[c].shape for c in children if c in by_name}
        kinds = {type(module) for _, module in named}
        if (len(children) >= 2 and len(kinds) == 1 and all(c in by_name for c in children) and len(shapes) == 1
                and len(next(iter(shapes))) == 3):
            blocks = children
    if blocks is None:
        raise ClsctlError("cannot find the transformer blocks of this model; name a layer with --target-layers "
                          "(see --preview-model)")
    last = by_name[blocks[-1]]
    for out in order:
        if (_inside(out.name, last.name) and out.name != last.name and "norm" in type(out.module).__name__.lower()
                and len(out.shape) == 3 and out.shape[1] == last.shape[1]):
            return out.name
    return blocks[-2]


def token_layout(count: int, height: int, width: int, max_extra: int = 8) -> tuple[int, int, int]:
    """``(extra, grid_h, grid_w)``: how ``count`` tokens of an ``height x width`` input lie on a patch grid.

    The grid has the input's aspect ratio; ``extra`` leading tokens (class, distillation) are not on it.

    Raises:
        ClsctlError: No grid of that aspect ratio fits with at most ``max_extra`` extra tokens.
    """
    for extra in range(0, max_extra + 1):
        cells = count - extra
        if cells < 1:
            break
        grid_h = round(math.sqrt(cells * height / width))
        for gh in (grid_h - 1, grid_h, grid_h + 1):
            if gh >= 1 and cells % gh == 0 and gh * width == (cells // gh) * height:
                return extra, gh, cells // gh
    raise ClsctlError(f"{count} tokens do not form a patch grid of a {height}x{width} input; choose another "
                      f"--target-layers")


def reshape_for(shape: tuple[int, ...], height: int, width: int) -> tuple[str, Callable | None]:
    """How to turn a layer's output of ``shape`` into ``B x C x H x W`` maps, for an ``height x width`` input.

    Returns:
        ``("nchw", None)``, ``("nhwc", permute)`` (channels-last maps, as Swin's) or ``("tokens", fn)`` (drop
        the extra tokens, lay the rest on the grid :func:`token_layout` finds).

    Raises:
        ClsctlError: The output is neither a feature map nor tokens.
    """
    if len(shape) == 4:
        _, a, b, c = shape
        ratio = height / width
        nchw = math.isclose(b / c, ratio, rel_tol=0.25)
        nhwc = math.isclose(a / b, ratio, rel_tol=0.25)
        if nhwc and (not nchw or c > a):
            return "nhwc", lambda tensor: tensor.permute(0, 3, 1, 2)
        return "nchw", None
    if len(shape) == 3:
        extra, grid_h, grid_w = token_layout(shape[1], height, width)

        def tokens(tensor: Any) -> Any:
            cells = tensor[:, extra:, :]
            return cells.reshape(tensor.shape[0], grid_h, grid_w, tensor.shape[2]).permute(0, 3, 1, 2)

        return "tokens", tokens
    raise ClsctlError(f"a layer with output shape {tuple(shape)} has no feature map to explain; choose another "
                      f"--target-layers (see --preview-model)")


def resolve_layers(model: Any, names: Sequence[str] | None, model_name: str,
                   order: Sequence[LayerOutput] | None = None) -> tuple[list[Any], list[str]]:
    """Modules named by ``names``; default the family's ``cam_layer``, else :func:`find_cam_layer` on ``order``."""
    from clsctl.models import model_info

    if not names:
        default = model_info(model_name).layout.cam_layer
        if default is None and order is not None:
            default = find_cam_layer(order)
        if default is None:
            raise ClsctlError(f"{model_name} has no default CAM layer; name one with --target-layers "
                              f"(see --preview-model)")
        names = [default]
    available = dict(model.named_modules())
    modules = []
    for name in names:
        if name not in available:
            close = difflib.get_close_matches(name, [n for n in available if n], n=5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ClsctlError(f"no layer '{name}' in {model_name}{hint} (list them with --preview-model)")
        modules.append(available[name])
    return modules, list(names)


def class_index(target: str | int | None, names: Sequence[str]) -> int | None:
    """An index or a (case-insensitive) class name -> index; None stays None (use the prediction)."""
    if target is None:
        return None
    text = str(target).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(names):
            raise ClsctlError(f"target category {index} is out of range for {len(names)} classes")
        return index
    lowered = [n.lower() for n in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    close = difflib.get_close_matches(text, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ClsctlError(f"unknown class '{text}'{hint}")


def _display(rgb: np.ndarray, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Original and overlay, enlarged so the shorter side is at least :data:`DISPLAY_MIN_SIDE` pixels."""
    import cv2
    from pytorch_grad_cam.utils.image import show_cam_on_image

    height, width = rgb.shape[:2]
    factor = max(1.0, DISPLAY_MIN_SIDE / min(height, width))
    size = (round(width * factor), round(height * factor))
    big = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC).clip(0, 1).astype(np.float32)
    big_cam = cv2.resize(cam, size, interpolation=cv2.INTER_LINEAR).clip(0, 1)
    overlay = show_cam_on_image(big, big_cam, use_rgb=True)
    return (big * 255).round().astype(np.uint8), overlay


def visualize_cam(image: str | Path, loaded: Any = None, *, checkpoint: str | Path | None = None,
                  model: str | None = None, weights: str | Path | None = None, pretrained: bool = False,
                  method: str = "GradCAM",
                  target_layers: Sequence[str] | None = None, target_category: str | int | None = None,
                  aug_smooth: bool = False, eigen_smooth: bool = False, save_path: str | Path | None = None,
                  device: str | None = None) -> CamResult:
    """Compute a class activation map for one image and save original and overlay side by side.

    Args:
        image: Image file.
        loaded: The model (a :class:`~clsctl.engine.loading.LoadedModel`); or give ``checkpoint`` or ``model``.
        checkpoint: A clsctl checkpoint (its class names and preprocessing are used).
        model: A registered model name instead of a checkpoint.
        weights: Weights file for ``model``.
        pretrained: Published ImageNet weights for ``model``.
        method: One of :data:`METHOD_NAMES`, any case.
        target_layers: Module names (see :func:`list_layers`); default the family's CAM layer, else the one
            :func:`find_cam_layer` finds.
        target_category: Class index or name to explain; default the predicted class.
        aug_smooth: Average over test-time augmentations (flips, scalings).
        eigen_smooth: Keep the first principal component of the weighted activations (less noise).
        save_path: PNG path; default ``cam_<image stem>_<method>.png``.
        device: ``auto``, ``cpu``, ``cuda``.

    With none of ``loaded``, ``checkpoint`` and ``model``: ImageNet-pretrained ResNet-50 (see
    :func:`clsctl.engine.loading.load_from_options`).
    """
    from clsctl.engine.loading import load_from_options

    cam_class = method_class(method)
    image_path = Path(image)
    source, rgb, tensor = _load_input(image_path, lambda: loaded if loaded is not None else load_from_options(
        checkpoint=checkpoint, model=model, weights=weights, pretrained=pretrained, device=device))
    net = source.require_pytorch("vis-cam")
    probabilities, outputs, order = _forward(net, tensor)
    predicted = int(probabilities.argmax())
    target = class_index(target_category, source.class_names)
    target = predicted if target is None else target
    layers, layer_names = resolve_layers(net, target_layers, source.model_name, order)
    kind, reshape = _layout(layer_names, outputs, source.model_name, tensor.shape[2], tensor.shape[3])
    grayscale = _compute_cam(cam_class, net, layers, kind, reshape, tensor, target,
                             aug_smooth=aug_smooth, eigen_smooth=eigen_smooth)
    names = source.class_names
    display_name = "GradCAM++" if cam_class.__name__ == "GradCAMPlusPlus" else cam_class.__name__
    lines = [f"predicted: {names[predicted]} ({float(probabilities[predicted]):.2f})",
             f"{display_name} for: {names[target]}  [{', '.join(layer_names)}]"]
    out = Path(save_path) if save_path is not None else Path(f"cam_{image_path.stem}_{cam_class.__name__}.png")
    _save_picture(rgb, grayscale, display_name, lines, out)
    warning = None
    if not grayscale.any():
        warning = (f"the {display_name} map is zero everywhere: no position of {', '.join(layer_names)} raises the "
                   f"score of '{names[target]}' (an untrained or zero-initialised classifier does this); try another "
                   f"method, --target-category or --target-layers")
    return CamResult(out, display_name, layer_names, predicted, names[predicted], float(probabilities[predicted]),
                     target, names[target], grayscale, warning)


def _load_input(image_path: Path, load: Callable[[], Any]) -> tuple[Any, np.ndarray, Any]:
    """The loaded model, the image as the network sees it (``H x W x 3`` in [0, 1], for display) and the
    normalised ``1 x 3 x H x W`` input on the model's device.

    The image is read before ``load`` runs: a bad image fails at once, without building a model.
    """
    from clsctl.readers import read_image_tensor

    original = read_image_tensor(image_path)
    source = load()
    shown = source.preprocessing.image_transform()(original)
    rgb = shown.permute(1, 2, 0).numpy().astype(np.float32) / 255.0
    tensor = source.preprocessing.transform("float")(original).unsqueeze(0).to(source.device)
    return source, rgb, tensor


def _forward(net: Any, tensor: Any) -> tuple[Any, dict[str, LayerOutput], list[LayerOutput]]:
    """Class probabilities (on the CPU) and every module's output (see :func:`record_outputs`)."""
    import torch

    with torch.no_grad():
        logits, outputs, order = record_outputs(net, tensor)
        return logits.float().softmax(1)[0].cpu(), outputs, order


def _layout(layer_names: Sequence[str], outputs: dict[str, LayerOutput], model_name: str, height: int,
            width: int) -> tuple[str, Callable | None]:
    """The one output layout (and reshape, see :func:`reshape_for`) the target layers share."""
    layouts = []
    for name in layer_names:
        if name not in outputs:
            raise ClsctlError(f"layer '{name}' of {model_name} gives no tensor output in a forward pass; "
                              f"choose another --target-layers (see --preview-model)")
        layouts.append(reshape_for(outputs[name].shape, height, width))
    kinds = sorted({kind for kind, _ in layouts})
    if len(kinds) > 1:
        raise ClsctlError(f"layers {', '.join(layer_names)} give outputs of different layouts ({', '.join(kinds)}); "
                          f"choose layers of one kind")
    return layouts[0]  # pytorch-grad-cam applies one reshape to every target layer


def _compute_cam(cam_class: type, net: Any, layers: list[Any], kind: str, reshape: Callable | None, tensor: Any,
                 target: int, *, aug_smooth: bool, eigen_smooth: bool) -> np.ndarray:
    """The ``H x W`` map in [0, 1] (NaNs as 0) of ``cam_class`` for class ``target``."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    options: dict[str, Any] = {}
    if cam_class.__name__ == "AblationCAM" and kind in ("tokens", "nhwc"):
        from pytorch_grad_cam import AblationLayerVit

        options["ablation_layer"] = AblationLayerVit()  # ablates the last (channel) axis of token outputs
    with cam_class(model=net, target_layers=layers, reshape_transform=reshape, **options) as extractor:
        if hasattr(extractor, "batch_size"):
            extractor.batch_size = 16  # ScoreCAM/AblationCAM forward passes per batch: modest for CPUs
        grayscale = extractor(input_tensor=tensor, targets=[ClassifierOutputTarget(target)],
                              aug_smooth=aug_smooth, eigen_smooth=eigen_smooth)[0]
    return np.nan_to_num(np.asarray(grayscale, dtype=np.float32))


def _save_picture(rgb: np.ndarray, grayscale: np.ndarray, display_name: str, lines: list[str], out: Path) -> None:
    """Original and overlay side by side, captioned with ``lines``, as a PNG."""
    original, overlay = _display(rgb, grayscale)
    picture = caption(hstack([caption(original, "original"), caption(overlay, display_name)]), lines)
    save_png(picture, out)
