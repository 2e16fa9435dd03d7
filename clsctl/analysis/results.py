"""``analyze-results`` and ``confusion-matrix``: look at the predictions file ``clsctl test --out`` writes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clsctl.analysis._draw import caption, pyplot, rescale, safe_name, save_figure, save_png, to_rgb_array
from clsctl.engine.predictions import PredictionsFile, check_records, read_predictions
from clsctl.errors import ClsctlError


def load_predictions(path: str | Path) -> PredictionsFile:
    """Read a predictions file and check it has class names and each record ``path``, ``label``, ``pred`` and
    ``probability`` (``clsctl test --out`` writes them; ``infer --out`` files have no labels)."""
    preds = read_predictions(path, need_class_names=True)
    check_records(preds, path, ("path", "label", "pred", "probability"))
    return preds


def display_transform(source: str | Path | None, overrides: Sequence[str] = ()) -> Any:
    """The image steps of a recipe's or checkpoint's :class:`~clsctl.data.preprocessing.Preprocessing` (None
    without a source): images are shown as the model saw them, resized and cropped. ``overrides``
    (``path.to.key=value``) apply to a recipe, or to the checkpoint's preprocessing."""
    if source is None:
        return None
    from clsctl.data.preprocessing import Preprocessing
    from clsctl.readers import check_file, read_checkpoint

    path = Path(source)
    if path.suffix.lower() in (".yaml", ".yml"):
        from clsctl.recipe import load_recipe

        return Preprocessing.from_recipe(load_recipe(path, overrides)).image_transform()
    check_file(path, "recipe or checkpoint")
    prep, rest = Preprocessing.from_dict(read_checkpoint(path)["preprocessing"], str(path)).with_overrides(overrides)
    if rest:
        raise ClsctlError(f"--set {rest[0].split('=', 1)[0]}: only the preprocessing of a checkpoint can change here")
    return prep.image_transform()


def select(records: Sequence[dict[str, Any]], topk: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``topk`` most confident correct and the ``topk`` most confident wrong predictions."""
    ranked = sorted(records, key=lambda r: float(r["probability"]), reverse=True)
    correct = [r for r in ranked if int(r["label"]) == int(r["pred"])]
    wrong = [r for r in ranked if int(r["label"]) != int(r["pred"])]
    return correct[:topk], wrong[:topk]


def analyze_results(predictions: str | Path, out_dir: str | Path, *, source: str | Path | None = None,
                    topk: int = 20, rescale_factor: float = 1.0,
                    overrides: Sequence[str] = ()) -> dict[str, list[Path]]:
    """Save the most confident correct predictions under ``out_dir/success`` and wrong ones under ``out_dir/fail``.

    Each PNG shows the image (through the test pipeline of ``source`` when given) with its true and predicted
    class and the score; names start with the rank, most confident first.

    Args:
        predictions: JSON written by ``clsctl test --out``.
        out_dir: Output folder.
        source: Recipe or checkpoint whose test pipeline prepares the images for display.
        topk: Images per group.
        rescale_factor: Nearest-neighbour upscaling of each image.
        overrides: ``path.to.key=value`` changes to a recipe ``source``.
    """
    from clsctl.readers import read_image_tensor

    if topk < 1:
        raise ClsctlError(f"--topk must be at least 1, got {topk}")
    if rescale_factor <= 0:
        raise ClsctlError(f"rescale factor must be positive, got {rescale_factor}")
    preds = load_predictions(predictions)
    transform = display_transform(source, overrides)
    names = preds.class_names
    out = Path(out_dir)
    written: dict[str, list[Path]] = {}
    for group, records in zip(("success", "fail"), select(preds.records, topk)):
        written[group] = []
        for rank, record in enumerate(records, start=1):
            image = read_image_tensor(record["path"])
            if transform is not None:
                image = transform(image)
            image = image.permute(1, 2, 0).numpy()
            true_name, pred_name = names[int(record["label"])], names[int(record["pred"])]
            color = (0, 110, 0) if group == "success" else (190, 0, 0)
            picture = caption(rescale(to_rgb_array(image), rescale_factor),
                              [f"true: {true_name}", f"pred: {pred_name} ({float(record['probability']):.2f})"], color)
            file_name = f"{rank:03d}_{safe_name(Path(record['path']).stem)}_{safe_name(pred_name)}.png"
            written[group].append(save_png(picture, out / group / file_name))
    return written


def confusion_matrix(preds: PredictionsFile, classes: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Counts ``matrix[true, predicted]`` over the predictions, optionally restricted to ``classes``.

    With ``classes``, rows and columns are those classes in the given order; samples whose true class is not
    among them are left out, and predictions of other classes are not shown (so rows may sum to less).
    """
    names = preds.class_names
    full = np.zeros((len(names), len(names)), dtype=np.int64)
    for record in preds.records:
        full[int(record["label"]), int(record["pred"])] += 1
    if not classes:
        return full, list(names)
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise ClsctlError(f"unknown classes {unknown}; the predictions have: {', '.join(names)}")
    index = [names.index(c) for c in classes]
    return full[np.ix_(index, index)], list(classes)


def plot_confusion_matrix(predictions: str | Path, out: str | Path, *, normalize: bool = False,
                          classes: Sequence[str] | None = None, title: str | None = None) -> tuple[Path, np.ndarray]:
    """Draw the confusion matrix with the value in every cell and class names on both axes.

    Args:
        predictions: JSON written by ``clsctl test --out``.
        out: PNG path.
        normalize: Show each row as percentages of its true class (recall on the diagonal).
        classes: Only these classes, in this order.
        title: Figure title.

    Returns:
        The PNG path and the matrix drawn (percentages when ``normalize``).
    """
    preds = load_predictions(predictions)
    counts, names = confusion_matrix(preds, classes)
    values = counts.astype(float)
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(100.0 * counts, totals, out=np.zeros_like(values), where=totals > 0)
    plt = pyplot()
    n = len(names)
    side = min(max(4.0, 0.55 * n + 2.5), 40.0)  # cells stay readable for 2 to ~70 classes
    fig, ax = plt.subplots(figsize=(side + 1.2, side), dpi=100)
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=100 if normalize else max(values.max(), 1))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of true class" if normalize else "samples")
    ax.set_xticks(range(n), labels=names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), labels=names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    threshold = (100 if normalize else values.max()) / 2
    font = max(5.0, min(12.0, 0.25 * 72 * side / n))  # points: about a quarter of a cell's side
    for row in range(n):
        for col in range(n):
            if n > 10 and counts[row, col] == 0:
                continue  # with many classes, a sea of zeros hides the few cells that matter
            text = f"{values[row, col]:.1f}" if normalize else str(int(counts[row, col]))
            ax.text(col, row, text, ha="center", va="center", fontsize=font,
                    color="white" if values[row, col] > threshold else "black")
    total = int(counts.sum())
    accuracy = 100.0 * np.trace(counts) / total if total else 0.0
    ax.set_title(title or f"confusion matrix ({total} samples, accuracy {accuracy:.1f} %)")
    out = save_figure(fig, out)
    return out, values
