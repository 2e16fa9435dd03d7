"""Checkpoints: atomic writes that survive crashes, safe loading, clear errors."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clsctl.engine.checkpoint import link_checkpoint, save_checkpoint
from clsctl.readers import read_checkpoint
from clsctl.errors import CheckpointError, CheckpointWriteError


def payload(value: float = 1.0) -> dict:
    return {"model": {"w": torch.full((4,), value)}, "recipe": {"model": {"name": "x"}}, "class_names": ["a"],
            "preprocessing": {"mean": [0.5], "std": [0.5]}, "epoch": 2}


def test_round_trip_with_weights_only(tmp_path: Path) -> None:
    path = save_checkpoint(payload(3.0), tmp_path / "sub" / "last.pt")
    data = read_checkpoint(path)
    assert data["format"] == "clsctl-checkpoint" and data["version"] == 1
    assert torch.equal(data["model"]["w"], torch.full((4,), 3.0)) and data["epoch"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left behind


def _fail_torch_save(obj: object, handle: object, error: OSError) -> None:
    handle.write(b"partial garbage")
    raise error


@pytest.mark.parametrize("where", ["write", "fsync", "create", "rename"])
def test_failed_write_keeps_previous_file_and_says_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         where: str) -> None:
    import errno
    import tempfile

    path = save_checkpoint(payload(1.0), tmp_path / "last.pt")
    error = {"write": OSError(errno.ENOSPC, "No space left on device"), "fsync": OSError(errno.EIO, "I/O error"),
             "create": PermissionError(errno.EACCES, "Permission denied"),
             "rename": OSError(errno.EIO, "I/O error")}[where]

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    if where == "write":
        monkeypatch.setattr(torch, "save", lambda obj, handle: _fail_torch_save(obj, handle, error))
    elif where == "fsync":
        monkeypatch.setattr(os, "fsync", fail)
    elif where == "create":
        monkeypatch.setattr(tempfile, "mkstemp", fail)
    else:
        monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(CheckpointWriteError) as excinfo:
        save_checkpoint(payload(2.0), path)
    monkeypatch.undo()
    message = str(excinfo.value)
    assert message.startswith(f"cannot write checkpoint {path}: {error.strerror} (") and "\n" not in message
    assert f"GiB free on {tmp_path}" in message and message.endswith("the previous checkpoint is intact")
    assert excinfo.value.exit_code == 4
    assert torch.equal(read_checkpoint(path)["model"]["w"], torch.full((4,), 1.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_the_folder_is_fsynced_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import stat

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("rename") or real_replace(a, b))
    save_checkpoint(payload(), tmp_path / "last.pt")
    assert events == ["fsync file", "rename", "fsync folder"]


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
    assert read_checkpoint(path)["model"]["w"].shape == (4_000_000,)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "text.pt").write_text("hello", encoding="utf-8")
    with pytest.raises(CheckpointError, match="is not a clsctl checkpoint"):
        read_checkpoint(tmp_path / "text.pt")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match="plain state dict"):
        read_checkpoint(tmp_path / "state.pt")
    torch.save({"format": "clsctl-checkpoint", "model": {}}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="incomplete"):
        read_checkpoint(tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pt")


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    import argparse  # any class outside torch's weights-only allow-list stands in for a malicious object

    torch.save({"format": "clsctl-checkpoint", "model": argparse.Namespace(x=1)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"unsafe pickle refused.*argparse\.Namespace"):
        read_checkpoint(tmp_path / "evil.pt")


def test_link_keeps_the_state_when_the_source_is_replaced(tmp_path: Path) -> None:
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    save_checkpoint({**payload(), "epoch": 1}, last)
    save_checkpoint({**payload(), "epoch": 0}, best)
    link_checkpoint(last, best)  # replaces the older best.pt
    assert read_checkpoint(best)["epoch"] == 1
    save_checkpoint({**payload(), "epoch": 2}, last)  # a new file under the same name
    assert read_checkpoint(best)["epoch"] == 1 and read_checkpoint(last)["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temporary left behind
