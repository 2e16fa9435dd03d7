"""Experiment trackers beside ``metrics.jsonl``: TensorBoard, MLflow and Weights & Biases.

``runtime.loggers`` names them; ``jsonl`` is always on. Each tracker is a sink with ``write(record)`` (the
same records ``metrics.jsonl`` gets) and ``close()``; only rank 0 builds them.

* MLflow: the tracking URI from ``MLFLOW_TRACKING_URI`` when set, else the local file store ``./mlruns``.
  Params are the flattened resolved recipe (``optim.lr``, ``data.train.pipeline.0.type``, ...); metrics are
  ``<mode>/<key>`` at the record's step (every log interval and every validation); when the run ends, the run
  folder's PNGs, ``recipe.yaml`` and the best checkpoint become artifacts.
* W&B: offline (files under ``<run>/wandb``, upload later with ``wandb sync``) unless the user has logged in
  (``WANDB_API_KEY`` or a netrc entry for the W&B host) or set ``WANDB_MODE``.

A resumed run continues the tracker run it started (the ids are kept in ``<run>/trackers.json``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from clsctl.errors import ClsctlError, TrainingInterrupted

logger = logging.getLogger("clsctl")

LOGGERS = ("jsonl", "tensorboard", "mlflow", "wandb")
POSITION_KEYS = {"mode", "epoch", "iter", "step", "time_stamp"}  # where a record belongs, not what it measured
IDS_FILE = "trackers.json"
DEFAULT_EXPERIMENT = "clsctl"
MLFLOW_PARAM_LIMIT = 6000  # characters of a param value the MLflow stores accept
MLFLOW_BATCH = 100  # params or metrics per log_batch call (the REST API's limit for params)


def _import(module: str, extra: str, what: str) -> ModuleType:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise ClsctlError(f"runtime.loggers: {what} needs the {extra} extra: pip install 'clsctl[{extra}]'") from exc


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``("a.b.0.c", "value")`` pairs of nested dicts and lists; leaves as strings (JSON for None and bools)."""
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from flatten(value, f"{prefix}{key}.")
    elif isinstance(data, (list, tuple)) and data:
        for index, value in enumerate(data):
            yield from flatten(value, f"{prefix}{index}.")
    else:
        text = data if isinstance(data, str) else json.dumps(data)
        yield prefix.rstrip("."), text


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The measured numbers of a record as ``<mode>/<key>``."""
    mode = record.get("mode", "train")
    return {f"{mode}/{key}": float(value) for key, value in record.items()
            if key not in POSITION_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool)}


def _saved_ids(run_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((run_dir / IDS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_id(run_dir: Path, tracker: str, run_id: str) -> None:
    ids = {**_saved_ids(run_dir), tracker: run_id}
    run_dir.mkdir(parents=True, exist_ok=True)
    from clsctl.atomic import write_text_atomic

    write_text_atomic(run_dir / IDS_FILE, json.dumps(ids, indent=2) + "\n")


def _ending_status() -> str:
    """``FINISHED``, ``KILLED`` (Ctrl-C) or ``FAILED``, from the exception in flight where ``close`` is called."""
    exc = sys.exc_info()[1]
    if exc is None:
        return "FINISHED"
    return "KILLED" if isinstance(exc, (KeyboardInterrupt, TrainingInterrupted)) else "FAILED"


class MlflowLog:
    """Params, metrics and artifacts of one run in MLflow.

    Args:
        run_dir: The run folder (its name is the MLflow run name).
        recipe: The resolved recipe as plain data (logged as params).
        experiment: MLflow experiment name.
        resume: Continue the MLflow run this run folder started, if there is one.
    """

    def __init__(self, run_dir: Path, recipe: dict[str, Any], experiment: str, *, resume: bool = False) -> None:
        mlflow = _import("mlflow", "mlflow", "MLflow")
        from mlflow.entities import Param

        self.run_dir = run_dir
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or Path("mlruns").resolve().as_uri()
        if self.uri.startswith("file:"):
            # MLflow 3 keeps its file store working but refuses it unless asked; a local store is what we want.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = mlflow.tracking.MlflowClient(tracking_uri=self.uri)
        known = _saved_ids(run_dir).get("mlflow") if resume else None
        self.run_id = known if known and self._exists(known) else None
        if self.run_id is None:
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
            run = self.client.create_run(experiment_id, run_name=run_dir.name,
                                         tags={"clsctl.run_dir": str(run_dir.resolve())})
            self.run_id = run.info.run_id
            params = [Param(key, value[:MLFLOW_PARAM_LIMIT]) for key, value in flatten(recipe)]
            for start in range(0, len(params), MLFLOW_BATCH):
                self.client.log_batch(self.run_id, params=params[start:start + MLFLOW_BATCH])
        else:
            self.client.update_run(self.run_id, status="RUNNING")
        _save_id(run_dir, "mlflow", self.run_id)
        logger.info("MLflow run %s at %s", self.run_id, self.uri)

    def _exists(self, run_id: str) -> bool:
        try:
            self.client.get_run(run_id)
        except Exception:  # noqa: BLE001  MlflowException for a run deleted or in another store
            return False
        return True

    def write(self, record: dict[str, Any]) -> None:
        """Log the record's numbers at its step."""
        from mlflow.entities import Metric

        import time

        stamp = int(time.time() * 1000)
        step = int(record.get("step", 0))
        metrics = [Metric(key, value, stamp, step) for key, value in scalars(record).items()]
        for start in range(0, len(metrics), MLFLOW_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + MLFLOW_BATCH])

    def close(self) -> None:
        """Upload the run folder's PNGs, ``recipe.yaml`` and ``best.pt``; mark the run ended."""
        status = _ending_status()
        for png in sorted(self.run_dir.rglob("*.png")):
            folder = png.parent.relative_to(self.run_dir).as_posix()
            self.client.log_artifact(self.run_id, str(png), "plots" if folder == "." else f"plots/{folder}")
        for name in ("recipe.yaml", "best.pt"):
            if (self.run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(self.run_dir / name))
        self.client.set_terminated(self.run_id, status=status)


def wandb_logged_in() -> bool:
    """Whether W&B credentials are at hand: ``WANDB_API_KEY``, or a netrc entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    import netrc
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbLog:
    """Config, metrics and summary of one run in Weights & Biases; offline unless logged in.

    Args:
        run_dir: The run folder (W&B writes its files under ``<run_dir>/wandb``).
        recipe: The resolved recipe (the run's config).
        project: W&B project.
        resume: Continue the W&B run this run folder started, if there is one.
    """

    def __init__(self, run_dir: Path, recipe: dict[str, Any], project: str, *, resume: bool = False) -> None:
        wandb = _import("wandb", "wandb", "Weights & Biases")
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_logged_in() else "offline")
        run_dir.mkdir(parents=True, exist_ok=True)
        known = _saved_ids(run_dir).get("wandb") if resume else None
        self.run = wandb.init(project=project, name=run_dir.name, dir=str(run_dir), config=recipe, mode=mode,
                              id=known, resume="allow" if known else None,
                              settings=wandb.Settings(silent=True, console="off"))
        self.mode = mode
        _save_id(run_dir, "wandb", self.run.id)
        logger.info("W&B run %s (%s)%s", self.run.id, mode,
                    f"; upload later with: wandb sync {run_dir / 'wandb'}/offline-run-*" if mode == "offline" else "")

    def write(self, record: dict[str, Any]) -> None:
        """Log the record's numbers at its step."""
        values = scalars(record)
        if values:
            self.run.log({**values, "epoch": record.get("epoch", 0)}, step=int(record.get("step", 0)))

    def close(self) -> None:
        """Finish the run (exit code 1 when training failed) and wait until its files are complete.

        ``run.finish()`` returns before W&B's service has written everything (seen with wandb 0.31 offline);
        ``wandb.teardown()`` waits for it, so ``wandb sync`` right after training finds a whole run.
        """
        import wandb

        exit_code = 0 if _ending_status() == "FINISHED" else 1
        self.run.finish(exit_code=exit_code)
        teardown = getattr(wandb, "teardown", None)
        if teardown is not None:
            teardown(exit_code)


def build_trackers(loggers: list[str], run_dir: Path, recipe: dict[str, Any], experiment: str | None, *,
                   resume: bool = False) -> list[Any]:
    """The sinks ``runtime.loggers`` asks for besides ``metrics.jsonl``.

    Raises:
        ClsctlError: A tracker's package is missing (the message names the extra to install).
    """
    sinks: list[Any] = []
    name = experiment or DEFAULT_EXPERIMENT
    for kind in dict.fromkeys(loggers):  # each once, in the order given
        if kind == "tensorboard":
            from clsctl.engine.tb import TensorBoardLog

            sinks.append(TensorBoardLog(run_dir / "tensorboard"))
        elif kind == "mlflow":
            sinks.append(MlflowLog(run_dir, recipe, name, resume=resume))
        elif kind == "wandb":
            sinks.append(WandbLog(run_dir, recipe, name, resume=resume))
    return sinks
