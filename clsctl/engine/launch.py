"""``clsctl train --gpus N`` and ``clsctl test --gpus N``: training or evaluation in N worker processes started
by torch's elastic launcher.

The launcher options and the collectives the workers use are in :mod:`clsctl.engine.distributed`; each
worker runs :func:`clsctl.engine.loop.train` or :func:`clsctl.engine.evaluate.evaluate`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clsctl.engine import distributed as D
from clsctl.engine.loop import STOP_SIGNALS, train
from clsctl.errors import ClsctlError, TrainingInterrupted
from clsctl.recipe import validate_recipe


def launch_training(recipe_data: dict[str, Any], options: D.LaunchOptions, *, work_dir: str | Path | None = None,
                    resume: bool | str | Path = False, overwrite: bool = False, device: str | None = None,
                    show_progress: bool = True) -> Any:
    """Train with ``options.nproc_per_node`` processes on this node through torch's elastic launcher.

    Returns:
        Rank 0's :class:`~clsctl.engine.loop.TrainResult` (``None`` on nodes other than node 0).

    Raises:
        ClsctlError: ``--gpus`` inside a run that torchrun/srun started already, more CUDA processes than
            GPUs, or a user error in the workers (same message and exit code as a single process).
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    if D.env_ranks() is not None:
        raise ClsctlError("this process was started by torchrun or srun already; drop --gpus (each started "
                          "process is one worker)")
    spec = device or recipe_data.get("runtime", {}).get("device", "auto")
    D.check_gpu_count(options.nproc_per_node, spec)
    config = D.launch_config(options)
    level = logging.getLogger("clsctl").getEffectiveLevel()
    args = (recipe_data, None if work_dir is None else str(work_dir),
            resume if isinstance(resume, bool) else str(resume), overwrite, device, show_progress, level)
    try:
        with D._worker_threads(options.nproc_per_node), D._restored_signal_handlers(), _forward_usr1_to_workers():
            results = elastic_launch(config, _worker)(*args)
    except SignalException as exc:  # SIGINT/SIGTERM to the launcher: it passed the signal on to the workers
        raise TrainingInterrupted(f"training interrupted ({exc.sigval.name}); last.pt holds the last saved "
                                  f"position; continue with --resume", exc.sigval) from None
    except ChildFailedError as exc:
        codes = {failure.exitcode for failure in exc.failures.values()}
        stop_codes = {128 + int(s) for s in STOP_SIGNALS}
        if len(codes) == 1 and codes <= stop_codes:  # the workers were signalled and stopped cleanly
            raise TrainingInterrupted("training interrupted; last.pt holds the last saved position; continue "
                                      "with --resume", codes.pop() - 128) from None
        raise RuntimeError(f"a training worker failed:\n{exc.format_msg()}") from None
    results = results or {}
    for value in results.values():
        if isinstance(value, dict) and "interrupted" in value:
            raise TrainingInterrupted(value["message"], int(value["interrupted"]) - 128)
    for value in results.values():
        if isinstance(value, dict) and "error" in value:
            error = D.WorkerError(value["message"])
            error.exit_code = int(value["exit_code"])
            raise error
    return results.get(0)


def _worker(recipe_data: dict[str, Any], work_dir: str | None, resume: bool | str, overwrite: bool,
            device: str | None, show_progress: bool, log_level: int) -> Any:
    """Entry point of each launched process: train and hand back the result (rank 0's) or the user error."""
    D._setup_worker_logging(log_level)
    try:
        result = train(validate_recipe(recipe_data), work_dir, resume=resume, overwrite=overwrite, device=device,
                       show_progress=show_progress)
    except TrainingInterrupted as exc:
        # Ctrl-C, SIGTERM, SIGUSR1: the launcher is shutting the workers down and will not collect a return
        # value (returning would leave this process waiting for it until the launcher kills it, 30 s later).
        # Say where the run stopped and leave at once, with the shell's code for the signal; SystemExit passes
        # the launcher's wrappers (they catch Exception) and lets the interpreter clean up as it exits.
        if int(os.environ.get("RANK", "0")) == 0:
            logging.getLogger("clsctl").warning("%s", exc)
        if exc.exit_code == 128 + getattr(signal, "SIGUSR1", -128):
            # SIGUSR1 reached the workers through the launcher, which keeps running and collects results:
            # hand the stop back as one (an exit code would be reported as a failed worker, with a traceback).
            return {"interrupted": exc.exit_code, "message": str(exc)}
        raise SystemExit(exc.exit_code) from None
    except ClsctlError as exc:
        # Every rank hits user errors (divergence, bad data, bad recipe) together; hand the message back to
        # the launching process, which renders it like a single-process run would.
        return {"error": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}
    return result


@contextlib.contextmanager
def _forward_usr1_to_workers() -> Iterator[None]:
    """SIGUSR1 to the launching process (Slurm's ``--signal=USR1@90`` reaches the task it started) goes on to
    the workers, which stop and save as for Ctrl-C; the launcher itself would otherwise die of it at once."""
    usr1 = getattr(signal, "SIGUSR1", None)
    if usr1 is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, frame: Any) -> None:
        import multiprocessing

        for child in multiprocessing.active_children():  # the spawned workers
            with contextlib.suppress(OSError):
                os.kill(child.pid, signum)

    previous = signal.signal(usr1, forward)
    try:
        yield
    finally:
        signal.signal(usr1, previous if previous is not None else signal.SIG_DFL)


# --------------------------------------------------------------------------- clsctl test --gpus N


def _evaluate_worker(kwargs: dict[str, Any], log_level: int) -> Any:
    """Entry point of each launched process: evaluate its share; rank 0 hands back the result."""
    D._setup_worker_logging(log_level)
    try:
        from clsctl.engine.evaluate import evaluate

        return evaluate(**kwargs)
    except ClsctlError as exc:  # every rank hits user errors alike; the launching process renders one
        return {"error": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}


def launch_evaluation(nproc: int, **kwargs: Any) -> Any:
    """:func:`~clsctl.engine.evaluate.evaluate` with ``nproc`` processes on this machine (one per GPU; CPU processes on gloo with
    ``device="cpu"``), started by torch's elastic launcher as ``clsctl train --gpus`` does.

    Raises:
        ClsctlError: Inside a run that torchrun/srun started already, more CUDA processes than GPUs, CPU
            processes without ``device="cpu"``, or a user error in the workers (same message and exit code).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    if D.env_ranks() is not None:
        raise ClsctlError("this process was started by torchrun or srun already; drop --gpus (each started "
                          "process is one worker)")
    device = kwargs.get("device")
    D.check_gpu_count(nproc, device)  # the same rule as training: CPU processes only with --device cpu
    config = D.launch_config(D.LaunchOptions(nproc))
    level = logging.getLogger("clsctl").getEffectiveLevel()
    try:
        threads = _same_threads_as_one_process() if device == "cpu" else D._worker_threads(nproc)
        with threads, D._restored_signal_handlers():
            results = elastic_launch(config, _evaluate_worker)(kwargs, level)
    except ChildFailedError as exc:
        raise RuntimeError(f"a test worker failed:\n{exc.format_msg()}") from None
    for value in (results or {}).values():
        if isinstance(value, dict) and "error" in value:
            error = D.WorkerError(value["message"])
            error.exit_code = int(value["exit_code"])
            raise error
    return (results or {})[0]


@contextlib.contextmanager
def _same_threads_as_one_process() -> Iterator[None]:
    """CPU workers compute with as many threads each as this process would, unless OMP_NUM_THREADS is set.

    A CPU convolution's last bits can depend on its thread count, so this is what makes ``--gpus N --device
    cpu`` give one process's numbers exactly (at the price of N x threads on the cores: CPU workers are for
    checking a distributed run, not for speed).
    """
    import torch

    if "OMP_NUM_THREADS" in os.environ:
        yield
        return
    os.environ["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    try:
        yield
    finally:
        os.environ.pop("OMP_NUM_THREADS", None)


def is_worker_process() -> bool:
    """Whether torchrun or srun started this process as one of several, and it is not rank 0 (which reports)."""
    ranks = D.env_ranks()
    return ranks is not None and ranks[0] != 0
