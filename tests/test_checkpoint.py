"""Checkpoints: atomic writes that survive crashes, safe loading, clear errors."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clsctl.engine.checkpoint import latest_checkpoint, link_checkpoint, load_checkpoint, save_checkpoint
from clsctl.errors import CheckpointError


def payload(value: float = 1.0) -> dict:
    return {"model": {"w": torch.full((4,), value)}, "recipe": {"model": {"name": "x"}}, "class_names": ["a"],
            "preprocessing": {"mean": [0.5], "std": [0.5]}, "epoch": 2}


def test_round_trip_with_weights_only(tmp_path: Path) -> None:
    path = save_checkpoint(payload(3.0), tmp_path / "sub" / "last.pt")
    data = load_checkpoint(path)
    assert data["format"] == "clsctl-checkpoint" and data["version"] == 1
    assert torch.equal(data["model"]["w"], torch.full((4,), 3.0)) and data["epoch"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_failed_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint(payload(1.0), tmp_path / "last.pt")

    def crash(obj: object, handle: object) -> None:
        handle.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(payload(2.0), path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((4,), 1.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_kill_during_saves_never_corrupts(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    script = (
        "import torch, sys\n"
        "from clsctl.engine.checkpoint import save_checkpoint\n"
        "big = {'model': {'w': torch.randn(4_000_000)}, 'recipe': {}, 'class_names': [], 'preprocessing': {}}\n"
        f"save_checkpoint(big, {str(path)!r})\n"
        "print('ready', flush=True)\n"
        f"while True: save_checkpoint(big, {str(path)!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)  # well inside one of the following writes
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(path)["model"]["w"].shape == (4_000_000,)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "text.pt").write_text("hello", encoding="utf-8")
    with pytest.raises(CheckpointError, match="is not a clsctl checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match="plain state dict"):
        load_checkpoint(tmp_path / "state.pt")
    torch.save({"format": "clsctl-checkpoint", "model": {}}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="nothing to resume"):
        latest_checkpoint(tmp_path)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    import argparse  # any class outside torch's weights-only allow-list stands in for a malicious object

    torch.save({"format": "clsctl-checkpoint", "model": argparse.Namespace(x=1)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"unsafe pickle refused.*argparse\.Namespace"):
        load_checkpoint(tmp_path / "evil.pt")


def test_link_keeps_the_state_when_the_source_is_replaced(tmp_path: Path) -> None:
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    save_checkpoint({**payload(), "epoch": 1}, last)
    save_checkpoint({**payload(), "epoch": 0}, best)
    link_checkpoint(last, best)  # replaces the older best.pt
    assert load_checkpoint(best)["epoch"] == 1
    save_checkpoint({**payload(), "epoch": 2}, last)  # a new file under the same name
    assert load_checkpoint(best)["epoch"] == 1 and load_checkpoint(last)["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temporary left behind
