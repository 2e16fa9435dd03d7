"""``report``: one self-contained HTML page (plus its PNGs and a JSON summary) about a trained checkpoint.

Every number comes from clsctl's own tools, run once each: :func:`clsctl.engine.evaluate.evaluate` (what
``clsctl test`` prints) for the metrics and the per-sample predictions, :func:`clsctl.analysis.flops.count_flops`
for parameters and FLOPs, :func:`clsctl.analysis.cam.visualize_cam` for the class activation maps,
:func:`clsctl.deploy.benchmark.run_benchmark` for throughput and latency on this machine, and
:func:`clsctl.analysis.logs.plot_curves` for the training curves of the run folder's ``metrics.jsonl``. What is new
here is the calibration (:mod:`clsctl.analysis.calibration`), the most confused class pairs, and the page.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from clsctl.analysis import _html as H
from clsctl.atomic import write_text_atomic
from clsctl.errors import ClsctlError

CURVE_KEYS = ("loss", "accuracy/top1", "lr")
METRIC_LABELS = {"accuracy/top1": "top-1 accuracy (%)", "accuracy/top5": "top-5 accuracy (%)",
                 "macro/precision": "macro precision (%)", "macro/recall": "macro recall (%)",
                 "macro/f1": "macro F1 (%)", "loss": "cross-entropy loss"}


@dataclass
class ReportResult:
    """What :func:`report` wrote and measured.

    Attributes:
        out_dir: The report folder.
        html: The page (``index.html``).
        json: The numbers (``report.json``).
        metrics: ``clsctl test``'s metrics.
        ece: Expected calibration error in percent.
        num_samples: Samples evaluated.
        confused_pairs: ``(true class, predicted class, count)``, most frequent first.
        figures: PNGs written, by name.
        speed: Throughput and latency measured, or None when skipped.
    """

    out_dir: Path
    html: Path
    json: Path
    metrics: dict[str, float]
    ece: float
    num_samples: int
    confused_pairs: list[tuple[str, str, int]] = field(default_factory=list)
    figures: dict[str, Path] = field(default_factory=dict)
    speed: dict[str, Any] | None = None


def confused_pairs(confusion: np.ndarray, class_names: Sequence[str], top: int = 10) -> list[tuple[str, str, int]]:
    """The ``top`` off-diagonal cells of ``confusion[true, predicted]`` with the most samples (ties: row order)."""
    off = confusion.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:top]
    pairs = []
    for index in flat:
        row, col = divmod(int(index), off.shape[1])
        if off[row, col] == 0:
            break
        pairs.append((class_names[row], class_names[col], int(off[row, col])))
    return pairs


def pick_examples(records: Sequence[dict[str, Any]], count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``count`` most confident mistakes and the ``count`` least confident correct predictions."""
    wrong = sorted((r for r in records if r["label"] != r["pred"]), key=lambda r: -float(r["probability"]))
    right = sorted((r for r in records if r["label"] == r["pred"]), key=lambda r: float(r["probability"]))
    return wrong[:count], right[:count]


def _example_picture(record: dict[str, Any], loaded: Any, out: Path, method: str,
                     names: Sequence[str]) -> tuple[Path, str | None]:
    """The image and its CAM overlay side by side (``vis-cam``'s picture); a plain thumbnail with a note when the
    model has no CAM layer."""
    from clsctl.analysis._draw import caption, save_png, to_rgb_array
    from clsctl.analysis.cam import visualize_cam

    try:
        visualize_cam(record["path"], loaded, method=method, save_path=out)
        return out, None
    except ClsctlError as error:
        from clsctl.readers import read_image

        picture = to_rgb_array(read_image(record["path"]).resize((224, 224)))
        save_png(caption(picture, [f"predicted: {names[record['pred']]} ({record['probability']:.2f})"]), out)
        return out, error.message


def _training_curves(checkpoint: Path, out: Path) -> Path | None:
    from clsctl.analysis.logs import numeric_keys, plot_curves
    from clsctl.engine.runlog import read_metrics

    log = checkpoint.parent / "metrics.jsonl"
    if not log.is_file():
        return None
    try:
        records = read_metrics(log)
    except ClsctlError:  # an empty or foreign log next to the checkpoint: the report goes without curves
        return None
    keys = [key for key in CURVE_KEYS if key in numeric_keys(records)]
    if not keys:
        return None
    return plot_curves([log], out, keys=keys, legend=keys, title=f"training curves ({log})",
                       window_size=(9, 2.4 * len(keys)))


def _model_card(loaded: Any, checkpoint: Path, out_dir: Path) -> dict[str, Any]:
    import yaml

    from clsctl.analysis.flops import count_flops

    card: dict[str, Any] = {
        "model": loaded.model_name, "classes": len(loaded.class_names),
        "input_size": list(loaded.input_size), "epoch": loaded.info.get("epoch"),
        "ema_weights": bool(loaded.info.get("ema_weights")), "deploy_form": bool(loaded.info.get("deploy")),
        "preprocessing": loaded.preprocessing.describe(),
        "recipe_yaml": yaml.safe_dump(loaded.recipe.to_dict(), sort_keys=False) if loaded.recipe else "",
    }
    try:
        flops = count_flops(loaded)
        card.update(params=flops.params, flops=flops.flops, flops_input=list(flops.input_shape))
    except ClsctlError as error:
        card.update(params=None, flops=None, flops_note=error.message)
    curves = _training_curves(checkpoint, out_dir / "training_curves.png")
    card["training_curves"] = str(curves) if curves else None
    return card


def _speed(loaded: Any, batch_size: int, iters: int) -> dict[str, Any]:
    from clsctl.deploy.benchmark import BenchmarkSettings, run_benchmark

    warmup = max(2, iters // 5)
    device = str(loaded.device)
    batch = run_benchmark(BenchmarkSettings(source=loaded.origin.source, batch_size=batch_size, iters=iters,
                                            warmup=warmup, device=device), loaded)
    single = run_benchmark(BenchmarkSettings(source=loaded.origin.source, batch_size=1, iters=iters, warmup=warmup,
                                             device=device), loaded)
    return {"device": batch.device, "device_name": batch.device_name, "threads": batch.versions["threads"],
            "torch": batch.versions["torch"], "batch_size": batch_size, "images_per_second": batch.images_per_second,
            "ms_per_batch": batch.ms_per_batch, "latency_ms": single.ms_per_batch,
            "latency_ms_p10": single.ms_per_batch_p10, "latency_ms_p90": single.ms_per_batch_p90,
            "iters": iters, "warmup": warmup, "input_shape": list(batch.input_shape)}


def report(checkpoint: str | Path, *, split: str = "test", data_root: str | Path | None = None,
           out: str | Path = "report", overrides: Sequence[str] = (), device: str | None = None,
           batch_size: int | None = None, examples: int = 8, cam_method: str = "GradCAM", bench_iters: int = 20,
           show_progress: bool = True) -> ReportResult:
    """Evaluate a checkpoint and write ``out/index.html`` (self-contained), its PNGs, ``predictions.json`` (as
    ``clsctl test --out`` writes it) and ``report.json``.

    Args:
        checkpoint: A clsctl checkpoint; its run folder's ``metrics.jsonl`` gives the training curves.
        split: ``test`` (falls back to ``val``), ``val`` or ``train``.
        data_root: Evaluate on this image folder (same class names) instead.
        out: Report folder.
        overrides: ``--set`` strings applied to the embedded recipe.
        device: ``auto``, ``cpu``, ``cuda``.
        batch_size: Evaluation batch size (default the recipe's); also the throughput batch.
        examples: Pictures in each of the two example groups (mistakes, unsure correct ones); 0 for none.
        cam_method: CAM method of the example pictures (see ``vis-cam``).
        bench_iters: Timed iterations of the throughput and latency measurement; 0 skips it.
        show_progress: Draw progress bars.
    """
    from clsctl.analysis.calibration import plot_reliability, reliability_bins
    from clsctl.analysis.cam import method_class
    from clsctl.analysis.results import plot_confusion_matrix
    from clsctl.engine.build import resolve_device
    from clsctl.engine.evaluate import evaluate
    from clsctl.engine.loading import load_model

    checkpoint = Path(checkpoint)
    if examples < 0 or bench_iters < 0:
        raise ClsctlError("--examples and --bench-iters must be 0 or more")
    method_class(cam_method)  # an unknown method fails now, not after the evaluation
    # Loaded once: the evaluation, the FLOPs count, every CAM example and the speed measurement use this model,
    # with the preprocessing --set changed (the same for the metrics and the pictures).
    loaded = load_model(checkpoint)
    loaded, rest = loaded.with_overrides(list(overrides))
    if loaded.recipe is None:
        raise ClsctlError(f"report needs a trained model with its recipe; {checkpoint} is a {loaded.origin.kind} "
                          f"export (report the checkpoint it was exported from)")
    loaded.module = loaded.module.to(resolve_device(device or loaded.recipe.runtime.device))
    loaded.device = next(loaded.module.parameters()).device
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    predictions_path = out_dir / "predictions.json"
    result = evaluate(loaded, split=split, data_root=data_root, overrides=tuple(rest), device=str(loaded.device),
                      batch_size=batch_size, out=predictions_path, show_progress=show_progress)
    records = result.predictions or []
    if records and "label" not in records[0]:
        raise ClsctlError("report covers single-label classifiers; this checkpoint is multi-label "
                          "(use `clsctl test` for its mAP)")
    names = result.class_names
    confidences = np.array([float(r["probability"]) for r in records])
    correct = np.array([r["label"] == r["pred"] for r in records], dtype=bool)
    bins = reliability_bins(confidences, correct)
    figures = {"confusion_matrix": plot_confusion_matrix(predictions_path, out_dir / "confusion_matrix.png")[0],
               "reliability": plot_reliability(bins, out_dir / "reliability.png")}
    pairs = confused_pairs(np.asarray(result.confusion), names)
    card = _model_card(loaded, checkpoint, out_dir)
    if card["training_curves"]:
        figures["training_curves"] = Path(card["training_curves"])

    shown, example_notes, speed = _examples_and_speed(records, examples, loaded, out_dir, cam_method, names,
                                                      batch_size or loaded.recipe.data.loader.batch_size, bench_iters,
                                                      show_progress)
    ece = 100.0 * bins.ece
    summary = _summary(result, checkpoint, split, data_root, ece, bins, pairs, card, speed, shown, figures)
    json_path = out_dir / "report.json"
    write_text_atomic(json_path, json.dumps(summary, indent=2))
    html_path = H.write_page(out_dir / "index.html", f"clsctl report: {card['model']}",
                             f"{checkpoint} on {data_root or split} ({result.num_samples} images) · "
                             f"{summary['created']}",
                             _sections(summary, card, figures, bins, shown, example_notes, cam_method))
    return ReportResult(out_dir, html_path, json_path, result.metrics, ece, result.num_samples, pairs, figures, speed)


def _examples_and_speed(records: Sequence[dict[str, Any]], examples: int, loaded: Any, out_dir: Path,
                        cam_method: str, names: Sequence[str], batch_size: int, bench_iters: int,
                        show_progress: bool) -> tuple[dict[str, list[tuple[dict[str, Any], Path]]],
                                                                        list[str], dict[str, Any] | None]:
    """The example pictures (CAM overlays) and the speed measurement, under progress bars.

    Returns:
        ``(record, picture)`` pairs of each example group, the notes of examples without a CAM, and the speed
        (None when ``bench_iters`` is 0).
    """
    from clsctl.analysis._draw import safe_name
    from clsctl.engine.progress import make_progress

    mistakes, unsure = pick_examples(records, examples)
    example_notes: list[str] = []
    shown: dict[str, list[tuple[dict[str, Any], Path]]] = {"mistakes": [], "unsure": []}
    speed = None
    with make_progress(show_progress) as progress:
        task = progress.add_task("CAM examples", total=len(mistakes) + len(unsure), status="")
        for group, chosen in (("mistakes", mistakes), ("unsure", unsure)):
            for rank, record in enumerate(chosen, start=1):
                target = out_dir / "examples" / f"{group}_{rank:02d}_{safe_name(Path(record['path']).stem)}.png"
                picture, note = _example_picture(record, loaded, target, cam_method, names)
                if note and note not in example_notes:
                    example_notes.append(note)
                shown[group].append((record, picture))
                progress.advance(task, 1)
        if bench_iters:
            bench_task = progress.add_task("throughput and latency", total=None, status="")
            speed = _speed(loaded, batch_size, bench_iters)
            progress.update(bench_task, total=1, completed=1)
    return shown, example_notes, speed


def _summary(result: Any, checkpoint: Path, split: str, data_root: str | Path | None, ece: float, bins: Any,
             pairs: list[tuple[str, str, int]], card: dict[str, Any], speed: dict[str, Any] | None,
             shown: dict[str, list[tuple[dict[str, Any], Path]]], figures: dict[str, Path]) -> dict[str, Any]:
    """What ``report.json`` holds (and the page shows)."""
    names = result.class_names
    return {
        "checkpoint": str(checkpoint), "split": split, "data_root": str(data_root) if data_root else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "num_samples": result.num_samples,
        "excluded": result.excluded, "metrics": result.metrics, "ece": ece, "ece_bins": len(bins.counts),
        "class_names": names, "per_class": {k: result.per_class[k] for k in ("precision", "recall", "f1", "support")},
        "confusion": result.confusion, "confused_pairs": [list(p) for p in pairs],
        "model": {k: v for k, v in card.items() if k != "recipe_yaml"}, "speed": speed,
        "examples": {group: [{"path": r["path"], "label": names[r["label"]], "pred": names[r["pred"]],
                              "probability": r["probability"], "picture": str(p)} for r, p in items]
                     for group, items in shown.items()},
        "figures": {k: str(v) for k, v in figures.items()},
    }


def human_count(value: float | None) -> str:
    """``25557032`` -> ``25.56M``; None -> ``-``."""
    if value is None:
        return "-"
    for threshold, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"{value / threshold:.2f}{suffix}"
    return f"{value:.0f}"


def _sections(summary: dict[str, Any], card: dict[str, Any], figures: dict[str, Path], bins: Any,
              shown: dict[str, list[tuple[dict[str, Any], Path]]], example_notes: list[str], method: str) -> list[str]:
    """The page's sections: model, metrics, confusion, calibration, examples, speed."""
    return [_model_section(card, figures), _metrics_section(summary), _confusion_section(summary, figures),
            _calibration_section(summary, figures, bins), _examples_section(summary, shown, example_notes, method),
            _speed_section(summary)]


def _model_section(card: dict[str, Any], figures: dict[str, Path]) -> str:
    rows = [[H.cell("model"), H.cell(card["model"])], [H.cell("classes"), H.cell(card["classes"])],
            [H.cell("input size"), H.cell(" x ".join(str(s) for s in card["input_size"]) or "-")],
            [H.cell("parameters"), H.cell(human_count(card.get("params")), numeric=True, data_metric="params",
                                          data_raw=card.get("params"))],
            [H.cell("FLOPs (multiply-adds)"), H.cell(human_count(card.get("flops")), numeric=True,
                                                     data_metric="flops", data_raw=card.get("flops"))],
            [H.cell("trained epochs"), H.cell(card.get("epoch") if card.get("epoch") is not None else "-")]]
    if card.get("ema_weights"):
        rows.append([H.cell("weights"), H.cell("EMA")])
    body = H.table(["", ""], rows)
    if card.get("flops_note"):
        body += f'<p class="note">FLOPs not counted: {H.esc(card["flops_note"])}</p>'
    if "training_curves" in figures:
        body += "<h3>training curves</h3>" + H.figure_file(figures["training_curves"], "training curves")
    else:
        body += '<p class="note">no metrics.jsonl beside the checkpoint: no training curves</p>'
    body += f"<details><summary>recipe</summary><pre>{H.esc(card['recipe_yaml'])}</pre></details>"
    return H.section("Model", body, "model")


def _metrics_section(summary: dict[str, Any]) -> str:
    names = summary["class_names"]
    metrics = summary["metrics"]
    rows = [[H.cell(METRIC_LABELS.get(k, k)), H.cell(f"{v:.2f}" if k != "loss" else f"{v:.4f}", numeric=True,
                                                    data_metric=k)] for k, v in metrics.items()]
    rows.append([H.cell("samples"), H.cell(summary["num_samples"], numeric=True, data_metric="samples")])
    body = H.table(["metric", "value"], rows, numeric=[False, True], table_id="metrics")
    if summary["excluded"]:
        body += f'<p class="warn">{summary["excluded"]} unreadable image(s) left out of the metrics</p>'
    per_class = summary["per_class"]
    rows = [[H.cell(name, data_class=name)]
            + [H.cell(f"{per_class[k][i]:.2f}", numeric=True, data_metric=k) for k in ("precision", "recall", "f1")]
            + [H.cell(per_class["support"][i], numeric=True, data_metric="support")] for i, name in enumerate(names)]
    body += ("<h3>per class (click a header to sort)</h3>"
             + H.table(["class", "precision (%)", "recall (%)", "F1 (%)", "support"], rows, sortable=True,
                       numeric=[False, True, True, True, True], table_id="per-class"))
    return H.section("Metrics", body, "metrics-section")


def _confusion_section(summary: dict[str, Any], figures: dict[str, Path]) -> str:
    names, per_class = summary["class_names"], summary["per_class"]
    body = H.figure_file(figures["confusion_matrix"], "confusion matrix")
    support = dict(zip(names, per_class["support"]))
    if summary["confused_pairs"]:
        rows = [[H.cell(t), H.cell(p), H.cell(n, numeric=True),
                 H.cell(f"{100.0 * n / max(support[t], 1):.1f}", numeric=True)] for t, p, n in summary["confused_pairs"]]
        body += "<h3>most confused pairs</h3>" + H.table(["true class", "predicted as", "samples", "% of true class"],
                                                         rows, sortable=True, numeric=[False, False, True, True])
    else:
        body += '<p class="ok">no confusions: every sample is predicted right</p>'
    return H.section("Confusion", body, "confusion")


def _calibration_section(summary: dict[str, Any], figures: dict[str, Path], bins: Any) -> str:
    filled = bins.counts > 0
    body = (f'<p>expected calibration error (ECE, {len(bins.counts)} equal-width bins): '
            f'<b data-metric="ece">{summary["ece"]:.2f}</b> %</p>' + H.figure_file(figures["reliability"], "reliability"))
    rows = [[H.cell(f"{lo:.2f}-{hi:.2f}"), H.cell(int(n), numeric=True), H.cell(f"{100 * a:.1f}", numeric=True),
             H.cell(f"{100 * c:.1f}", numeric=True)]
            for lo, hi, n, a, c, f in zip(bins.edges[:-1], bins.edges[1:], bins.counts, bins.accuracy,
                                          bins.confidence, filled) if f]
    body += "<details><summary>bins</summary>" + H.table(
        ["confidence", "samples", "accuracy (%)", "mean confidence (%)"], rows, numeric=[False, True, True, True]) + \
        "</details>"
    return H.section("Calibration", body, "calibration")


def _examples_section(summary: dict[str, Any], shown: dict[str, list[tuple[dict[str, Any], Path]]],
                      example_notes: list[str], method: str) -> str:
    names = summary["class_names"]
    body = ""
    for group, title in (("mistakes", "most confident mistakes"), ("unsure", "least confident correct predictions")):
        items = shown[group]
        body += f"<h3>{title}</h3>"
        if not items:
            body += '<p class="note">none</p>'
            continue
        figs = [f"<figure>{H.img(H.jpeg_uri(p), Path(r['path']).name, 'example')}<figcaption>"
                f"true <b>{H.esc(names[r['label']])}</b>, predicted <b>{H.esc(names[r['pred']])}</b> "
                f"({r['probability']:.2f})<br>{H.esc(r['path'])}</figcaption></figure>" for r, p in items]
        body += f'<div class="grid">{"".join(figs)}</div>'
    body += f'<p class="note">overlays: {H.esc(method)} for the predicted class</p>'
    for note in example_notes:
        body += f'<p class="warn">no CAM: {H.esc(note)}</p>'
    return H.section("Examples", body, "examples")


def _speed_section(summary: dict[str, Any]) -> str:
    speed = summary["speed"]
    if speed:
        rows = [[H.cell("device"), H.cell(f"{speed['device']} ({speed['device_name']}, {speed['threads']} threads, "
                                          f"torch {speed['torch']})")],
                [H.cell(f"throughput (batch {speed['batch_size']})"),
                 H.cell(f"{speed['images_per_second']:,.1f} img/s", numeric=True, data_metric="images_per_second")],
                [H.cell("latency (batch 1, median)"),
                 H.cell(f"{speed['latency_ms']:.2f} ms", numeric=True, data_metric="latency_ms")],
                [H.cell("latency p10 - p90"),
                 H.cell(f"{speed['latency_ms_p10']:.2f} - {speed['latency_ms_p90']:.2f} ms", numeric=True)]]
        body = H.table(["", ""], rows) + (f'<p class="note">forward passes under inference_mode, {speed["iters"]} '
                                           f'timed after {speed["warmup"]} warm-up (as clsctl benchmark)</p>')
    else:
        body = '<p class="note">not measured (--bench-iters 0)</p>'
    return H.section("Speed on this machine", body, "speed")
