"""Tests of clsctl.analysis.logs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis_helpers import assert_picture, differ, write_log
from clsctl.analysis.logs import key_series, parse_window_size, plot_curves, run_label, train_time
from clsctl.errors import ClsctlError


def test_series_from_train_then_val(tmp_path: Path) -> None:
    from clsctl.engine.runlog import read_metrics

    records = read_metrics(write_log(tmp_path / "run" / "metrics.jsonl"))
    steps, values, mode = key_series(records, "loss")
    assert mode == "train" and steps == [2, 4, 6, 8, 10, 12, 14, 16, 18] and values[0] == pytest.approx(0.5)
    steps, values, mode = key_series(records, "accuracy/top1")
    assert mode == "val" and steps == [6, 12, 18] and values == [60.0, 70.0, 80.0]
    assert key_series(records, "nope") == ([], [], "")


def test_train_time_excludes_the_first_record_of_each_epoch(tmp_path: Path) -> None:
    # Epoch 2's first record (iterations 1-2) is slow start-up; epoch 3 is the slowest otherwise.
    log = write_log(tmp_path / "m.jsonl", times={(2, 2): 5.0})
    stats = train_time(log)
    assert stats.epochs == [1, 2, 3]
    assert stats.epoch_iter_time == pytest.approx([0.1, 0.2, 0.3])
    assert (stats.slowest_epoch, stats.fastest_epoch) == (3, 1)
    assert stats.std_over_epochs == pytest.approx(np.std([0.1, 0.2, 0.3]))
    assert stats.average_iter_time == pytest.approx(0.2)
    assert stats.excluded_records == 3 and stats.iterations == 12
    # Epoch wall time counts every iteration (outliers included): 2 x 5.0 + 4 x 0.2 for epoch 2.
    assert stats.epoch_time == pytest.approx([0.6, 10.8, 1.8])

    with_outliers = train_time(log, include_outliers=True)
    assert with_outliers.slowest_epoch == 2
    assert with_outliers.epoch_iter_time[1] == pytest.approx(10.8 / 6)
    assert with_outliers.iterations == 18 and with_outliers.excluded_records == 0


def test_train_time_errors(tmp_path: Path) -> None:
    with pytest.raises(ClsctlError, match="not found"):
        train_time(tmp_path / "missing.jsonl")
    (tmp_path / "val.jsonl").write_text(json.dumps({"mode": "val", "epoch": 1, "step": 3}) + "\n")
    with pytest.raises(ClsctlError, match="no train records"):
        train_time(tmp_path / "val.jsonl")


def test_plot_curves(tmp_path: Path) -> None:
    a = write_log(tmp_path / "a" / "metrics.jsonl")
    b = write_log(tmp_path / "b" / "metrics.jsonl", loss_scale=3.0)
    one = assert_picture(plot_curves([a], tmp_path / "one.png", window_size=(6, 4)), 300, 200)
    two = assert_picture(plot_curves([a, b], tmp_path / "two.png", window_size=(6, 4)))
    assert differ(one, two)
    keys = assert_picture(plot_curves([a], tmp_path / "k.png", keys=["loss", "accuracy/top1"], window_size=(6, 4),
                                      legend=["train loss", "val top-1"], title="run a", style="ggplot"))
    assert differ(one, keys)
    wide = assert_picture(plot_curves([a], tmp_path / "w.png", window_size=(10, 4)))
    assert wide.shape[1] > one.shape[1] + 300
    assert run_label(a) == "a" and run_label(tmp_path / "a") == "a"


def test_plot_curves_errors(tmp_path: Path) -> None:
    log = write_log(tmp_path / "m.jsonl")
    with pytest.raises(ClsctlError, match="keys in this log") as info:
        plot_curves([log], tmp_path / "x.png", keys=["accuracy"])
    assert "accuracy/top1" in str(info.value)
    with pytest.raises(ClsctlError, match="--legend needs 2"):
        plot_curves([log], tmp_path / "x.png", keys=["loss", "lr"], legend=["one"])
    with pytest.raises(ClsctlError, match="unknown style"):
        plot_curves([log], tmp_path / "x.png", style="no-such-style")


def test_window_size() -> None:
    assert parse_window_size("12x7") == (12.0, 7.0)
    assert parse_window_size("8*4.5") == (8.0, 4.5)
    for bad in ("12", "axb", "0x3"):
        with pytest.raises(ClsctlError):
            parse_window_size(bad)
