"""The training-relevant defaults of every family and where they come from, as data.

``docs/defaults.md`` is rendered from :data:`FAMILY_DEFAULTS` (``python -m clsctl.models._defaults``) and
``tests/test_models_defaults.py`` builds the models and checks each entry against them, so the table, the code
and the references cannot drift apart silently. The rule: a fresh model gets what MMPretrain's implementation
(backbone defaults plus the model config of that variant) gives it; timm's where MMPretrain has no such family.
Loading published weights overwrites all of it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "defaults.md"

MMP = "open-mmlab/mmpretrain"
TIMM = "huggingface/pytorch-image-models"


@dataclass(frozen=True)
class FamilyDefaults:
    """One family's defaults for fresh models.

    Attributes:
        family: Family name (as in ``ModelMeta.family``).
        reference: ``MMPretrain`` or ``timm``.
        sources: Files of the reference the values come from.
        zero_init_residual: The last norm of every residual branch starts at 0.
        batchnorm: ``(eps, momentum)`` of every BatchNorm layer, None for families without BatchNorm.
        head: Init of the classifier: ``("normal", std)``, ``("trunc_normal", std)``, ``("zeros",)``,
            ``("uniform_fan_out",)`` (U(+-1/sqrt(classes)), timm's TF-style init) or ``("pytorch",)``.
        drop_path: Largest drop-path (stochastic depth) rate per variant; variants not listed have none.
        dropout: Dropout before the classifier per variant (0 when not listed).
        layer_scale: Initial layer-scale value, None without layer scale.
        other: Further defaults in words.
        differs_from_torchvision: What clsctl sets that torchvision's constructor does not (empty: nothing).
    """

    family: str
    reference: str
    sources: tuple[str, ...]
    zero_init_residual: bool = False
    batchnorm: tuple[float, float] | None = (1e-5, 0.1)
    head: tuple = ("normal", 0.01)
    drop_path: dict[str, float] = field(default_factory=dict)
    dropout: dict[str, float] = field(default_factory=dict)
    layer_scale: float | None = None
    other: str = ""
    differs_from_torchvision: str = ""


_RESNET_OTHER = "Kaiming-normal convs (fan_out, bias 0), BatchNorm 1/0"
_LINEAR_HEAD = "mmpretrain/models/heads/linear_head.py"

FAMILY_DEFAULTS: tuple[FamilyDefaults, ...] = (
    FamilyDefaults("resnet", "MMPretrain", ("mmpretrain/models/backbones/resnet.py",
                                            "mmpretrain/models/backbones/resnext.py", _LINEAR_HEAD),
                   zero_init_residual=True, other=_RESNET_OTHER,
                   differs_from_torchvision="zero-init residual BN (torchvision: off), classifier N(0, 0.01) "
                                            "(torchvision: PyTorch's default)"),
    FamilyDefaults("resnet_cifar", "MMPretrain", ("mmpretrain/models/backbones/resnet_cifar.py", _LINEAR_HEAD),
                   zero_init_residual=True, other=_RESNET_OTHER),
    FamilyDefaults("se_resnet", "MMPretrain", ("mmpretrain/models/backbones/seresnet.py", _LINEAR_HEAD),
                   zero_init_residual=True, other=_RESNET_OTHER + "; SE convs Kaiming with bias 0"),
    FamilyDefaults("res2net", "MMPretrain", ("mmpretrain/models/backbones/res2net.py", _LINEAR_HEAD),
                   zero_init_residual=True, other=_RESNET_OTHER),
    FamilyDefaults("regnet", "MMPretrain (RegNetX), timm (RegNetY)",
                   ("mmpretrain/models/backbones/regnet.py", "timm/models/regnet.py (zero_init_last)"),
                   zero_init_residual=True, other="torchvision's init otherwise (Kaiming-normal convs, BN 1/0)",
                   differs_from_torchvision="zero-init residual BN (torchvision: off)"),
    FamilyDefaults("convnext", "MMPretrain", ("configs/_base_/models/convnext/convnext-{tiny,small,base,large}.py",
                                              "mmpretrain/models/backbones/convnext.py", _LINEAR_HEAD),
                   batchnorm=None,
                   drop_path={"convnext_tiny": 0.1, "convnext_small": 0.4, "convnext_base": 0.5,
                              "convnext_large": 0.5},
                   layer_scale=1e-6, other="LayerNorm eps 1e-6; convs and block linears TruncNormal(0.02)",
                   differs_from_torchvision="classifier N(0, 0.01) (torchvision: TruncNormal(0.02))"),
    FamilyDefaults("vit", "MMPretrain", ("configs/_base_/models/vit-base-p16.py",
                                         "mmpretrain/models/heads/vision_transformer_head.py"),
                   batchnorm=None, head=("zeros",), dropout={},
                   other="LayerNorm eps 1e-6; dropout 0.1 after the position embedding and in every block "
                         "(ViT-B/16, B/32, L/16); `drop_path_rate` option (linear over the blocks)",
                   differs_from_torchvision="dropout 0.1 (torchvision: 0); drop-path option (torchvision: none)"),
    FamilyDefaults("deit", "MMPretrain", ("configs/deit/deit-{tiny,small,base}_*_in1k.py",
                                          "mmpretrain/models/backbones/vision_transformer.py",
                                          "mmpretrain/models/heads/vision_transformer_head.py"),
                   batchnorm=None, head=("zeros",), drop_path={"deit_base": 0.1},
                   other="LayerNorm eps 1e-6; every linear (qkv, proj, MLP) TruncNormal(0.02), bias 0; "
                         "DeiT-S/T configs remove drop-path",
                   differs_from_torchvision="linears TruncNormal(0.02) (torchvision's ViT: Xavier)"),
    FamilyDefaults("swin", "MMPretrain", ("configs/_base_/models/swin_transformer/{tiny,small,base}_224.py",),
                   batchnorm=None, head=("trunc_normal", 0.02),
                   drop_path={"swin_tiny": 0.2, "swin_small": 0.3, "swin_base": 0.5},
                   other="LayerNorm eps 1e-5; linears TruncNormal(0.02)"),
    FamilyDefaults("swin_v2", "MMPretrain", ("configs/_base_/models/swin_transformer_v2/{tiny,small,base}_256.py",),
                   batchnorm=None, head=("trunc_normal", 0.02),
                   drop_path={"swin_v2_tiny": 0.2, "swin_v2_small": 0.3, "swin_v2_base": 0.5},
                   other="LayerNorm eps 1e-5; linears TruncNormal(0.02)"),
    FamilyDefaults("mobilenet_v2", "MMPretrain", ("mmpretrain/models/backbones/mobilenet_v2.py",
                                                  "configs/_base_/models/mobilenet_v2_1x.py", _LINEAR_HEAD),
                   other="Kaiming convs, BN 1/0",
                   differs_from_torchvision="no dropout before the classifier (torchvision: 0.2)"),
    FamilyDefaults("mobilenet_v3", "MMPretrain", ("mmpretrain/models/backbones/mobilenet_v3.py",
                                                  "configs/_base_/models/mobilenet_v3/mobilenet_v3_*_imagenet.py"),
                   batchnorm=(1e-3, 0.01),
                   dropout={"mobilenet_v3_small": 0.2, "mobilenet_v3_large": 0.2},
                   other="StackedLinearClsHead (hidden 1024/1280, Hardswish), both linears N(0, 0.01)"),
    FamilyDefaults("efficientnet", "MMPretrain", ("mmpretrain/models/backbones/efficientnet.py",
                                                  "configs/_base_/models/efficientnet_b*.py", _LINEAR_HEAD),
                   batchnorm=(1e-5, 0.1),
                   other="Kaiming convs, BN 1/0; BN eps is torchvision's (1e-5 in B0-B4, 1e-3 in B5-B7; "
                         "MMPretrain: 1e-3) because the published weights were trained with it",
                   differs_from_torchvision="no drop-path and no dropout (torchvision: 0.2 and 0.2-0.5), "
                                            "classifier N(0, 0.01) (torchvision: uniform), BN momentum 0.1 in "
                                            "B5-B7 (torchvision: 0.01)"),
    FamilyDefaults("efficientnet_v2", "MMPretrain", ("mmpretrain/models/backbones/efficientnet_v2.py",
                                                     "configs/_base_/models/efficientnet_v2/efficientnet_v2_*.py",
                                                     _LINEAR_HEAD),
                   batchnorm=(1e-3, 0.1), other="Kaiming convs, BN 1/0",
                   differs_from_torchvision="no drop-path and no dropout (torchvision: 0.2 and 0.2-0.4), "
                                            "classifier N(0, 0.01) (torchvision: uniform)"),
    FamilyDefaults("shufflenet_v1", "MMPretrain", ("mmpretrain/models/backbones/shufflenet_v1.py", _LINEAR_HEAD),
                   other="stem conv N(0, 0.01), other convs N(0, 1/input channels per group); "
                         "BatchNorm weight 1, bias 1e-4"),
    FamilyDefaults("shufflenet_v2", "MMPretrain", ("mmpretrain/models/backbones/shufflenet_v2.py", _LINEAR_HEAD),
                   other="stem conv N(0, 0.01), other convs N(0, 1/input channels per group); "
                         "BatchNorm weight 1, bias 1e-4",
                   differs_from_torchvision="all of the init (torchvision: PyTorch's defaults)"),
    FamilyDefaults("mnasnet", "timm", ("timm/models/efficientnet.py (mnasnet_*)",
                                       "timm/models/_efficientnet_builder.py (_init_weight_goog)"),
                   head=("uniform_fan_out",),
                   other="convs N(0, sqrt(2/fan_out)) with fan_out per group, BN 1/0",
                   differs_from_torchvision="BN momentum 0.1 (torchvision: 0.0003), no dropout (torchvision: "
                                            "0.2), timm's init"),
    FamilyDefaults("densenet", "MMPretrain", ("mmpretrain/models/backbones/densenet.py",
                                              "configs/_base_/models/densenet/densenet121.py", _LINEAR_HEAD),
                   other="torchvision's init otherwise (MMPretrain sets none for the backbone)",
                   differs_from_torchvision="classifier N(0, 0.01) (torchvision: PyTorch's default, bias 0)"),
    FamilyDefaults("vgg", "MMPretrain", ("mmpretrain/models/backbones/vgg.py",),
                   dropout={n: 0.5 for n in ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn",
                                             "vgg19", "vgg19_bn")},
                   other="Kaiming convs, BN 1/0, every linear N(0, 0.01) (the classifier's two hidden layers "
                         "have dropout 0.5)"),
    FamilyDefaults("inception", "MMPretrain", ("mmpretrain/models/backbones/inception_v3.py",),
                   batchnorm=(1e-3, 0.1), head=("trunc_normal", 0.1), dropout={"inception_v3": 0.5},
                   other="convs and linears TruncNormal(0.1), BN 1/0; aux head conv 0.01, linear 0.001",
                   differs_from_torchvision="linear biases 0 (torchvision: PyTorch's default)"),
    FamilyDefaults("lenet", "MMPretrain", ("mmpretrain/models/backbones/lenet.py",), batchnorm=None,
                   head=("pytorch",), other="PyTorch's default init (MMPretrain sets none)"),
    FamilyDefaults("repvgg", "MMPretrain", ("mmpretrain/models/backbones/repvgg.py", _LINEAR_HEAD),
                   other="Kaiming convs (bias 0), BN 1/0",
                   differs_from_torchvision="(not in torchvision; the official repo leaves PyTorch's defaults)"),
    FamilyDefaults("mobileone", "MMPretrain", ("mmpretrain/models/backbones/mobileone.py", _LINEAR_HEAD),
                   other="Kaiming convs (bias 0), BN 1/0",
                   differs_from_torchvision="(not in torchvision; Apple's repo leaves PyTorch's defaults)"),
)


def defaults_of(family: str) -> FamilyDefaults:
    """The entry of ``family``."""
    return next(d for d in FAMILY_DEFAULTS if d.family == family)


def _head(head: tuple) -> str:
    kind = head[0]
    if kind == "normal":
        return f"N(0, {head[1]:g}), bias 0"
    if kind == "trunc_normal":
        return f"TruncNormal({head[1]:g}), bias 0"
    if kind == "zeros":
        return "zeros"
    if kind == "uniform_fan_out":
        return "U(+-1/sqrt(classes)), bias 0"
    return "PyTorch's default"


def _rates(rates: dict[str, float]) -> str:
    if not rates:
        return "0"
    return ", ".join(f"{name} {rate:g}" for name, rate in rates.items())


def _row(d: FamilyDefaults) -> str:
    bn = "-" if d.batchnorm is None else f"eps {d.batchnorm[0]:g}, momentum {d.batchnorm[1]:g}"
    sources = "<br>".join(f"`{s}`" for s in d.sources)
    cells = [d.family, f"{d.reference}<br>{sources}", "last BN = 0" if d.zero_init_residual else "-", bn,
             _head(d.head), _rates(d.drop_path), _rates(d.dropout),
             "-" if d.layer_scale is None else f"{d.layer_scale:g}", d.other, d.differs_from_torchvision or "-"]
    return "| " + " | ".join(cells) + " |"


_HEADER = f"""# Defaults of fresh models

Generated by `python -m clsctl.models._defaults` from `clsctl/models/_defaults.py`; do not edit by hand.
`tests/test_models_defaults.py` builds the models and checks every column against this table (and, for the
families timm has, against timm's own models), and that this file is up to date. Back to the
[model zoo](model_zoo.md).

The rule: a model built without weights starts as MMPretrain ([{MMP}](https://github.com/{MMP})) builds it
(its backbone's defaults plus the model config of that variant), or as timm ([{TIMM}](https://github.com/{TIMM}))
where MMPretrain has no such family. Where clsctl builds on a torchvision constructor it sets the options that
constructor offers and initialises what it lacks; the last column lists what that changes. Loading published
weights (`pretrained=True`, `weights=`, `model.init`) overwrites every parameter and buffer, so torchvision and
timm checkpoints load bit-identically. Options keep their names: `zero_init_residual=False` (ResNet-like and
RegNet), `dropout=`, `stochastic_depth_prob=`, `drop_path_rate=` (ViT/DeiT) give the other behaviour.

Why it matters: with torchvision's ResNet init (no zero-init of the residual BN), SGD at lr 0.1 without warm-up
diverges in the first epoch on small data, where timm's and MMPretrain's init trains
(see `benchmarks/vs_timm.py`).

Where MMPretrain and timm differ, clsctl takes MMPretrain's value, and it shows in very short runs: MMPretrain's
classifier starts at N(0, 0.01) with bias 0, timm's ResNet keeps PyTorch's `nn.Linear` init (std about
1 / sqrt(3 x in_features)), so at the start the backbone gets about 2.5x smaller gradients through the head.
Measured with `benchmarks/vs_timm.py` (ResNet-18, digits at 32 px, 3 epochs = 66 SGD steps, one epoch of
warm-up, seeds 0-2): clsctl 83.2 % mean top-1, the same run with PyTorch's head init 86.1 %, timm 85.3 %.
After 8 epochs (176 steps, the benchmark's default) the init no longer decides: 97.6 % for clsctl, 97.5 % for
timm.
MMPretrain's published accuracies (100+ epochs) were trained with its init, which is why clsctl keeps it.

| Family | Reference and source files | Residual branches | BatchNorm | Classifier init | Drop-path | Dropout before classifier | Layer scale | Other | Differs from torchvision's constructor |
|---|---|---|---|---|---|---|---|---|---|
"""

_FOOTER = """
## Training components: where clsctl follows MMPretrain and differs from timm

`tests/test_timm_parity.py` checks each against timm's own code.

| Component | Same as timm | Deliberate difference (MMPretrain semantics) |
|---|---|---|
| Mixup (`data.batch_augments: mixup`) | images and targets `lam * y + (1 - lam) * y[perm]` for the same lam and pairing equal `timm.data.Mixup`'s | clsctl pairs samples by a random permutation (MMPretrain's `Mixup`), timm with the flipped batch; one augment per batch chosen by `prob` (MMPretrain's `RandomBatchAugment`), where timm switches between Mixup and CutMix with `switch_prob` |
| CutMix | for the same lam and box centre, the same box and targets, lam corrected to the clipped box's area (timm's `correct_lam`) | for an odd cut size the box spans `cy - cut // 2` to `cy + cut // 2` as MMPretrain's (one pixel less than timm's `cy + (cut + 1) // 2`) |
| Label smoothing (`loss.label_smoothing`) | equals timm's `LabelSmoothingCrossEntropy` and `SoftTargetCrossEntropy` on smoothed one-hot targets: `y (1 - e) + e / C` | with Mixup/CutMix the smoothing is applied after mixing (timm's `Mixup(label_smoothing=...)` smooths before; the result is the same linear combination) |
| Cosine schedule with warm-up | per-step lr equals `timm.scheduler.create_scheduler_v2(sched='cosine', warmup_prefix=True, warmup_lr=lr * warmup_start_factor, step_on_epochs=False)` | the cosine runs over the steps after the warm-up (MMPretrain: `LinearLR` then `CosineAnnealingLR(begin=warmup)`), i.e. timm's `warmup_prefix=True`; timm's default (`False`) runs it over the whole run |
| EMA (`ema:`) | each update is `timm.utils.ModelEmaV3(decay)`'s: `ema = decay * ema + (1 - decay) * w` for parameters and float buffers, integer buffers copied; no warm-up by default (timm's `use_warmup=False`, MMPretrain's `EMAHook`); decay 0.9998 (timm's `train.py` and MMPretrain's `momentum=2e-4`) | BatchNorm statistics are averaged as timm does (MMPretrain's `EMAHook` copies buffers); `warmup: true` uses `min(decay, (1 + n) / (10 + n))`, timm's `use_warmup` `1 - (1 + n) ** (-2/3)` |
| RandAugment | `magnitude: 9` (with the default `num_magnitude_bins: 11`) is 9/10 of each op's range, the strength of timm's `rand-m9` and MMPretrain's `magnitude_level=9, total_level=10`; rotate, shear, translate, brightness/color/contrast/sharpness and solarize take the same values as timm's increasing ops | clsctl uses torchvision's `RandAugment`: its 14 ops are timm's 15 without Invert and SolarizeAdd, plus Identity; Posterize keeps 4 bits at m9 (timm's increasing Posterize: 1); fill 0 (timm: the ImageNet mean) |
"""


def render_defaults() -> str:
    """The Markdown text of ``docs/defaults.md``."""
    return _HEADER + "\n".join(_row(d) for d in FAMILY_DEFAULTS) + "\n" + _FOOTER


def main(path: Path = DOC_PATH) -> None:
    """Write the table to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_defaults(), encoding="utf-8")
    print(f"wrote {path} ({len(FAMILY_DEFAULTS)} families)", file=sys.stderr)


if __name__ == "__main__":
    main()
