"""A local, pre-filled Hugging Face cache, laid out as huggingface_hub lays it out, and offline mode on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REVISION = "0123456789abcdef0123456789abcdef01234567"  # a commit hash, as refs/main holds one


def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache under ``tmp_path`` that huggingface_hub uses, with ``HF_HUB_OFFLINE=1``: nothing here
    can reach the network.

    huggingface_hub reads these variables when it is imported, so its constants are patched as well.
    """
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def put_in_cache(cache: Path, repo_id: str, files: dict[str, Path | bytes], revision: str = REVISION) -> Path:
    """Place ``files`` (name -> source file or content) in the cache as snapshot ``revision`` of ``repo_id``,
    with ``refs/main`` pointing at it: ``models--org--name/{refs/main, snapshots/<rev>/<file>}``.

    Returns:
        The snapshot folder.
    """
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision, encoding="utf-8")
    for name, source in files.items():
        target = snapshot / name
        if isinstance(source, bytes):
            target.write_bytes(source)
        else:
            shutil.copyfile(source, target)
    return snapshot
