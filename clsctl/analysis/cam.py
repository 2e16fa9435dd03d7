"""``vis-cam``: class activation maps (pytorch-grad-cam) of a checkpoint or a registered model on one image.

The target layer and, for transformers, the token-to-grid reshape are worked out from the model: the family's
``cam_layer`` (last CNN stage, the last block's input norm for ViT/DeiT, the final norm for Swin) and
``cam_reshape`` metadata, with the patch grid and the number of extra (class, distillation) tokens read from the
model and the input, so no flags beyond the method are needed.
"""

from __future__ import annotations

import difflib
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
class CamSource:
    """A model ready for CAM: network, class names, display steps and normalisation, and its registered name."""

    model: Any
    class_names: list[str]
    steps: list[Any]
    mean: list[float]
    std: list[float]
    model_name: str


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


def load_source(*, checkpoint: str | Path | None = None, model: str | None = None, weights: str | Path | None = None,
                pretrained: bool = False) -> CamSource:
    """The model and its preprocessing from a checkpoint, or from a registered name (ImageNet-style eval steps)."""
    from clsctl.data.transforms import build_step, pipeline_from_dicts

    if (checkpoint is None) == (model is None):
        raise ClsctlError("give exactly one of a checkpoint or a model name")
    if checkpoint is not None:
        from clsctl.engine.build import model_from_checkpoint

        loaded = model_from_checkpoint(checkpoint)
        prep = loaded.preprocessing
        steps = [build_step(s) for s in pipeline_from_dicts(prep["pipeline"])]
        return CamSource(loaded.model, loaded.class_names, steps, list(prep["mean"]), list(prep["std"]),
                         loaded.recipe.model.name)
    from clsctl.engine.predict import imagenet_class_names
    from clsctl.models import create_model, model_info
    from clsctl.recipe.schema import CenterCrop, Resize

    meta = model_info(model)
    net = create_model(model, pretrained=pretrained, weights=weights)
    count = net.model_meta.num_classes
    names = imagenet_class_names() if meta.class_names == "imagenet-1k" and count == 1000 else [
        f"class_{i}" for i in range(count)]
    height, width = meta.input_size
    # The model zoos' evaluation crop: shorter side to size / 0.875, then the centre crop.
    steps = [build_step(Resize(type="resize", size=int(round(min(height, width) / 0.875)))),
             build_step(CenterCrop(type="center_crop", size=(height, width)))]
    return CamSource(net, names, steps, list(meta.mean), list(meta.std), meta.name)


def list_layers(model: Any) -> list[tuple[str, str]]:
    """``(name, module type)`` of every sub-module, for choosing ``--target-layers``."""
    return [(name, type(module).__name__) for name, module in model.named_modules() if name]


def resolve_layers(model: Any, names: Sequence[str] | None, model_name: str) -> tuple[list[Any], list[str]]:
    """Modules named by ``names``, or the family's default CAM layer."""
    from clsctl.models import model_info

    if not names:
        default = model_info(model_name).extra.get("cam_layer")
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


def token_grid(model: Any, height: int, width: int) -> tuple[int, int]:
    """Patch grid of a ViT-style model for an input of ``height x width``."""
    patch = getattr(model, "patch_size", None)  # torchvision VisionTransformer
    if patch is None and hasattr(model, "patch_embed"):  # timm
        patch = getattr(model.patch_embed, "patch_size", None)
    if patch is None:
        raise ClsctlError("cannot find the patch size of this transformer; it needs a reshape the tool does not know")
    ph, pw = (patch, patch) if isinstance(patch, int) else tuple(patch)
    return height // ph, width // pw


def reshape_transform(kind: str | None, model: Any, height: int, width: int) -> Callable | None:
    """Turn a transformer layer's output into ``B x C x H x W`` feature maps.

    ``vit``: ``B x N x C`` tokens, the first ``N - grid`` of which are extra (class, distillation) tokens and
    are dropped; ``swin``: ``B x H x W x C`` maps, permuted to channels-first.
    """
    if kind == "vit":
        grid_h, grid_w = token_grid(model, height, width)

        def vit(tensor: Any) -> Any:
            extra = tensor.shape[1] - grid_h * grid_w
            if extra < 0:
                raise ClsctlError(f"layer output has {tensor.shape[1]} tokens, fewer than the {grid_h}x{grid_w} "
                                  f"patch grid; choose another --target-layers")
            tokens = tensor[:, extra:, :]
            return tokens.reshape(tensor.shape[0], grid_h, grid_w, tensor.shape[2]).permute(0, 3, 1, 2)

        return vit
    if kind == "swin":
        return lambda tensor: tensor.permute(0, 3, 1, 2)
    return None


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


def visualize_cam(image: str | Path, *, checkpoint: str | Path | None = None, model: str | None = None,
                  weights: str | Path | None = None, pretrained: bool = False, method: str = "GradCAM",
                  target_layers: Sequence[str] | None = None, target_category: str | int | None = None,
                  aug_smooth: bool = False, eigen_smooth: bool = False, save_path: str | Path | None = None,
                  device: str | None = None) -> CamResult:
    """Compute a class activation map for one image and save original and overlay side by side.

    Args:
        image: Image file.
        checkpoint: A clsctl checkpoint (its class names and eval pipeline are used).
        model: A registered model name instead of a checkpoint.
        weights: Weights file for ``model``.
        pretrained: Published ImageNet weights for ``model``.
        method: One of :data:`METHOD_NAMES`, any case.
        target_layers: Module names (see :func:`list_layers`); default the family's CAM layer.
        target_category: Class index or name to explain; default the predicted class.
        aug_smooth: Average over test-time augmentations (flips, scalings).
        eigen_smooth: Keep the first principal component of the weighted activations (less noise).
        save_path: PNG path; default ``cam_<image stem>_<method>.png``.
        device: ``auto``, ``cpu``, ``cuda``.
    """
    import torch
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchvision.transforms import functional as TF

    from clsctl.data.datasets import load_image
    from clsctl.engine.build import resolve_device
    from clsctl.models import model_info

    cam_class = method_class(method)
    source = load_source(checkpoint=checkpoint, model=model, weights=weights, pretrained=pretrained)
    image_path = Path(image)
    if not image_path.is_file():
        raise ClsctlError(f"image not found: {image_path}")
    try:
        shown = load_image(image_path)
    except OSError as exc:
        raise ClsctlError(f"cannot read image {image_path}: {exc}") from exc
    for step in source.steps:
        shown = step(shown)
    rgb = np.asarray(shown, dtype=np.float32) / 255.0
    tensor = TF.normalize(TF.to_tensor(shown), source.mean, source.std).unsqueeze(0)
    dev = resolve_device(device)
    net = source.model.to(dev).eval()
    tensor = tensor.to(dev)
    with torch.no_grad():
        probabilities = net(tensor).float().softmax(1)[0].cpu()
    predicted = int(probabilities.argmax())
    target = class_index(target_category, source.class_names)
    target = predicted if target is None else target

    layers, layer_names = resolve_layers(net, target_layers, source.model_name)
    kind = model_info(source.model_name).extra.get("cam_reshape")
    reshape = reshape_transform(kind, net, tensor.shape[2], tensor.shape[3])
    options: dict[str, Any] = {}
    if cam_class.__name__ == "AblationCAM" and kind in ("vit", "swin"):
        from pytorch_grad_cam import AblationLayerVit

        options["ablation_layer"] = AblationLayerVit()  # ablates the last (channel) axis of token outputs
    with cam_class(model=net, target_layers=layers, reshape_transform=reshape, **options) as extractor:
        if hasattr(extractor, "batch_size"):
            extractor.batch_size = 16  # ScoreCAM/AblationCAM forward passes per batch: modest for CPUs
        grayscale = extractor(input_tensor=tensor, targets=[ClassifierOutputTarget(target)],
                              aug_smooth=aug_smooth, eigen_smooth=eigen_smooth)[0]
    grayscale = np.nan_to_num(np.asarray(grayscale, dtype=np.float32))
    original, overlay = _display(rgb, grayscale)
    names = source.class_names
    display_name = "GradCAM++" if cam_class.__name__ == "GradCAMPlusPlus" else cam_class.__name__
    lines = [f"predicted: {names[predicted]} ({float(probabilities[predicted]):.2f})",
             f"{display_name} for: {names[target]}  [{', '.join(layer_names)}]"]
    picture = caption(hstack([caption(original, "original"), caption(overlay, display_name)]), lines)
    out = Path(save_path) if save_path is not None else Path(f"cam_{image_path.stem}_{cam_class.__name__}.png")
    save_png(picture, out)
    warning = None
    if not grayscale.any():
        warning = (f"the {display_name} map is zero everywhere: no position of {', '.join(layer_names)} raises the "
                   f"score of '{names[target]}' (an untrained or zero-initialised classifier does this); try another "
                   f"method, --target-category or --target-layers")
    return CamResult(out, display_name, layer_names, predicted, names[predicted], float(probabilities[predicted]),
                     target, names[target], grayscale, warning)
