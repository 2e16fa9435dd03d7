"""Shell completion: committed scripts and model index are current; completion is fast and torch-free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clsctl.cli import completions as C

# Runs the app as the `clsctl` console script does, and reports on stderr whether torch got imported.
_RUN_APP = ("import atexit, sys; atexit.register(lambda: sys.stderr.write(f'TORCH={\"torch\" in sys.modules}'));"
            "from clsctl.cli.main import run; sys.argv[0] = 'clsctl'; run()")


def _run_clsctl(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", _RUN_APP, *args], env=full_env, cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def _bash_complete(*words: str, cwd: Path | None = None) -> tuple[list[str], str, float]:
    start = time.perf_counter()
    proc = _run_clsctl({"_CLSCTL_COMPLETE": "complete_bash", "COMP_WORDS": " ".join(words),
                        "COMP_CWORD": str(len(words) - 1)}, cwd=cwd)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split(), proc.stderr, elapsed


def test_committed_scripts_and_index_are_current() -> None:
    stale = C.stale_files()
    assert stale == [], f"regenerate with `make completions` (stale: {', '.join(map(str, stale))})"


def test_index_lists_exactly_the_registered_models() -> None:
    from clsctl.models import MODELS, list_models

    index = json.loads(C.INDEX_PATH.read_text(encoding="utf-8"))["models"]
    assert list(index) == list_models()
    assert all(index[name] == MODELS.get(name).meta.family for name in index)


def test_scripts_are_typers_for_clsctl() -> None:
    bash = (C.SCRIPTS_DIR / "clsctl.bash").read_text(encoding="utf-8")
    assert "_CLSCTL_COMPLETE=complete_bash" in bash and "complete -o default -F _clsctl_completion clsctl" in bash
    assert "#compdef clsctl" in (C.SCRIPTS_DIR / "clsctl.zsh").read_text(encoding="utf-8")
    assert "complete --command clsctl" in (C.SCRIPTS_DIR / "clsctl.fish").read_text(encoding="utf-8")


def test_regeneration_writes_only_what_changed(tmp_path: Path) -> None:
    index = tmp_path / "index.json"
    written = C.write_generated(tmp_path / "completions", index)
    assert len(written) == 4 and C.stale_files(tmp_path / "completions", index) == []
    (tmp_path / "completions" / "clsctl.zsh").write_text("old\n", encoding="utf-8")
    assert C.stale_files(tmp_path / "completions", index) == [tmp_path / "completions" / "clsctl.zsh"]
    assert C.write_generated(tmp_path / "completions", index) == [tmp_path / "completions" / "clsctl.zsh"]


def test_check_flag_reports_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert C.main(["completions", "--check", "--dir", str(tmp_path)]) == 1  # empty folder: all three missing
    out = capsys.readouterr().out
    assert sum(line.startswith(f"stale: {tmp_path}") for line in out.splitlines()) == 3


def test_model_name_completion_is_fast_and_torch_free() -> None:
    names, stderr, elapsed = _bash_complete("clsctl", "infer", "x.png", "--model", "mobileone_s")
    assert names == ["mobileone_s0", "mobileone_s1", "mobileone_s2", "mobileone_s3", "mobileone_s4"]
    assert "TORCH=False" in stderr
    assert elapsed < 10  # about 0.4 s on an idle machine; importing torch alone takes longer than that
    benchmark_names, stderr, _ = _bash_complete("clsctl", "benchmark", "repvgg_b1")
    assert benchmark_names == ["repvgg_b1", "repvgg_b1g2", "repvgg_b1g4"] and "TORCH=False" in stderr


def test_recipe_path_completion(tmp_path: Path) -> None:
    (tmp_path / "recipes" / "base").mkdir(parents=True)
    for name in ("a.yaml", "b.yml", "notes.txt"):
        (tmp_path / "recipes" / name).write_text("{}", encoding="utf-8")
    (tmp_path / "run.pt").write_bytes(b"")
    # A lone folder match is opened, so the shell keeps completing inside it.
    names, stderr, _ = _bash_complete("clsctl", "train", "rec", cwd=tmp_path)
    assert names == ["recipes/a.yaml", "recipes/b.yml", "recipes/base/"] and "TORCH=False" in stderr
    names, _, _ = _bash_complete("clsctl", "print-config", "recipes/a", cwd=tmp_path)
    assert names == ["recipes/a.yaml"]
    files, _, _ = _bash_complete("clsctl", "benchmark", "r", cwd=tmp_path)
    assert "recipes/" in files and "run.pt" in files and "resnet18" in files


def test_completers_directly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "x.yaml").write_text("{}", encoding="utf-8")
    (tmp_path / ".hidden.yaml").write_text("{}", encoding="utf-8")
    assert C.complete_recipe_path("d") == ["deep/er/x.yaml"]
    assert C.complete_recipe_path("") == ["deep/er/x.yaml"]  # hidden files only when asked for
    assert C.complete_recipe_path(".h") == [".hidden.yaml"]
    assert C.complete_checkpoint_path("nowhere/") == []
    assert ("test_resnet", "resnet") in C.complete_model_name("test_")


def test_zsh_and_fish_protocols() -> None:
    zsh = _run_clsctl({"_CLSCTL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "clsctl infer --model test_rep"})
    assert zsh.returncode == 0 and '"test_repvgg":"repvgg"' in zsh.stdout
    fish = _run_clsctl({"_CLSCTL_COMPLETE": "complete_fish", "_TYPER_COMPLETE_FISH_ACTION": "get-args",
                        "_TYPER_COMPLETE_ARGS": "clsctl infer --model test_mob"})
    assert fish.returncode == 0 and fish.stdout.strip() == "test_mobileone\tmobileone"


def test_install_completion_writes_the_committed_script(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    proc = _run_clsctl(env, "--install-completion", "bash")
    assert proc.returncode == 0, proc.stderr
    installed = (tmp_path / ".bash_completions" / "clsctl.sh").read_text(encoding="utf-8")
    assert installed.strip() == (C.SCRIPTS_DIR / "clsctl.bash").read_text(encoding="utf-8").strip()
    assert "source" in (tmp_path / ".bashrc").read_text(encoding="utf-8")
    shown = _run_clsctl(env, "--show-completion", "fish")
    assert shown.stdout.strip() == (C.SCRIPTS_DIR / "clsctl.fish").read_text(encoding="utf-8").strip()
