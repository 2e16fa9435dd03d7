"""Distributed training on torch.distributed: launching workers, joining a run, gathering results.

Three ways to get N processes, one code path once they run:

* ``clsctl train RECIPE --gpus N`` starts them through torch's elastic launcher (``LaunchConfig`` +
  ``elastic_launch``, the API behind ``torchrun``), on this machine or on ``--nnodes`` machines;
* ``torchrun ... -m clsctl train RECIPE`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
* ``srun ... clsctl train RECIPE`` sets ``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``.

Each worker then calls :func:`setup`, which joins the process group (NCCL on CUDA, gloo on the CPU).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from clsctl.engine.build import resolve_device
from clsctl.errors import ClsctlError

logger = logging.getLogger("clsctl")


@dataclass
class DistContext:
    """Where this process stands in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this process initialised the process group, so it also tears it down
    control_group: Any = None  # CPU (gloo) group for small decisions; None: the default group is gloo already

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes files."""
        return self.rank == 0


def env_ranks(env: dict[str, str] | None = None) -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` of a process started by torchrun/elastic or Slurm's srun; ``None``
    for a plain single process.

    torchrun's variables win; Slurm's count only inside a job step (``srun``) with more than one task, since
    an ``sbatch`` script alone also carries ``SLURM_PROCID``.
    """
    env = dict(os.environ if env is None else env)
    if "RANK" in env and "WORLD_SIZE" in env:
        return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0))
    tasks = int(env.get("SLURM_NTASKS", "1") or 1)
    if tasks > 1 and "SLURM_PROCID" in env and ("SLURM_STEP_ID" in env or "SLURM_STEPID" in env):
        return int(env["SLURM_PROCID"]), tasks, int(env.get("SLURM_LOCALID", 0))
    return None


def _slurm_master_addr(env: dict[str, str]) -> str:
    """The first host of the Slurm step: where rank 0 runs."""
    nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or ""
    if nodes:
        import subprocess

        try:
            out = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, check=True)
            return out.stdout.split()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            pass
    return env.get("SLURM_LAUNCH_NODE_IPADDR", "127.0.0.1")


def setup(device_spec: str | None, timeout_s: float | None = None) -> DistContext:
    """Join the process group when the environment says this process is one of several.

    A CUDA process (one of several, or alone on ``cuda:N``) makes its GPU the current device, so that
    everything that uses "the current GPU" (pinned-memory threads, ``is_bf16_supported``, NCCL) uses it.

    Args:
        device_spec: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; in a distributed CUDA run each process takes
            ``cuda:LOCAL_RANK``, or the single GPU it sees (Slurm's ``--gpus-per-task=1``).
        timeout_s: How long a collective may wait for the other processes (``runtime.dist_timeout``); None:
            torch's default.

    Raises:
        ClsctlError: A CUDA run with more processes on this node than GPUs.
    """
    device = resolve_device(device_spec)
    ranks = env_ranks()
    if ranks is None or ranks[1] <= 1:
        if device.type == "cuda":
            device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
            torch.cuda.set_device(device)
        return DistContext(device=device)
    rank, world_size, local_rank = ranks
    if device.type == "cuda":
        device = torch.device("cuda", local_gpu(rank, local_rank, torch.cuda.device_count()))
        torch.cuda.set_device(device)
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device,
                           control_group=_control_group(timeout_s))
    # Slurm starts the processes but leaves the rendezvous to us: rank 0's host and a fixed port.
    os.environ.setdefault("MASTER_ADDR", _slurm_master_addr(dict(os.environ)))
    os.environ.setdefault("MASTER_PORT", "29500")
    os.environ.setdefault("RANK", str(rank))
    os.environ.setdefault("WORLD_SIZE", str(world_size))
    os.environ.setdefault("LOCAL_RANK", str(local_rank))
    if rank != 0:  # rank 0 speaks for the run; the others only warn
        log = logging.getLogger("clsctl")
        log.setLevel(max(log.getEffectiveLevel(), logging.WARNING))
    backend = "nccl" if device.type == "cuda" else "gloo"
    options: dict[str, Any] = {}
    if timeout_s:
        options["timeout"] = datetime.timedelta(seconds=timeout_s)
    if device.type == "cuda":
        options["device_id"] = device  # binds the NCCL communicator to this GPU, formed now (errors show here)
    dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size, **options)
    logger.debug("rank %d of %d joined (%s on %s)", rank, world_size, backend, device)
    return DistContext(rank, world_size, local_rank, device, owns_group=True, control_group=_control_group(timeout_s))


def local_gpu(rank: int, local_rank: int, visible: int) -> int:
    """The index of this process's GPU among the ``visible`` ones.

    Normally ``local_rank``. Under Slurm with ``--gpus-per-task=1`` (or any launcher that sets
    ``CUDA_VISIBLE_DEVICES`` per process) each process sees exactly one GPU while its local rank runs 0..N-1:
    that GPU is index 0.

    Raises:
        ClsctlError: More processes on this node than visible GPUs.
    """
    if visible == 1:
        return 0
    if local_rank >= visible:
        raise ClsctlError(f"process {rank} wants GPU {local_rank}, but this machine has {visible}; start fewer "
                          f"processes per node")
    return local_rank


def _control_group(timeout_s: float | None = None) -> Any:
    """A gloo group beside an NCCL one: agreeing on a flag there needs no CUDA synchronisation, which would
    stall the GPU queue once per step."""
    if dist.get_backend() == "gloo":
        return None
    timeout = datetime.timedelta(seconds=timeout_s) if timeout_s else None
    return dist.new_group(backend="gloo", timeout=timeout)


def teardown(ctx: DistContext) -> None:
    """Leave the process group if :func:`setup` joined it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op in a single process)."""
    if ctx.distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``tensor`` over the processes, in place (no-op in a single process)."""
    if ctx.distributed:
        dist.all_reduce(tensor)
    return tensor


def any_ranks(flags: Sequence[bool], ctx: DistContext) -> list[bool]:
    """For each flag, whether it is true on at least one process; one CPU collective for all of them."""
    if not ctx.distributed:
        return list(flags)
    value = torch.tensor([1 if flag else 0 for flag in flags], dtype=torch.int32)
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=ctx.control_group)
    return [bool(v) for v in value.tolist()]


def broadcast_object(value: Any, ctx: DistContext) -> Any:
    """Rank 0's ``value`` (picklable) on every process; the value itself in a single process."""
    if not ctx.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, group=ctx.control_group)
    return box[0]


def gather_objects(value: Any, ctx: DistContext) -> list[Any]:
    """Every process's ``value`` (data ``torch.load(weights_only=True)`` accepts, tensors on the CPU), in rank
    order; ``[value]`` in a single process.

    Runs on the CPU (gloo) group, so it never waits for the GPU queue.
    """
    if not ctx.distributed:
        return [value]
    # Tensors travel as torch.save bytes: all_gather_object's own pickling of tensors does not load back
    # ("UntypedStorage has no attribute dtype" in torch 2.14), and bytes load with weights_only=True.
    buffer = io.BytesIO()
    torch.save(value, buffer)
    parts: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(parts, buffer.getvalue(), group=ctx.control_group)
    return [torch.load(io.BytesIO(part), weights_only=True) for part in parts]


def broadcast_buffers(module: torch.nn.Module, ctx: DistContext) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics), in place.

    DDP broadcasts them at the start of each training forward, and that forward then updates each process's
    copy with its own batch: after the last step they differ, and rank 0's are the ones saved. Validating
    after this scores on every process the model that is checkpointed.
    """
    if not ctx.distributed:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def wrap_ddp(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """``model`` in DistributedDataParallel, on this process's GPU (or the CPU)."""
    on_cuda = ctx.device.type == "cuda"
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[ctx.device.index] if on_cuda else None)


def gather_by_index(indices: Sequence[int], *tensors: torch.Tensor, ctx: DistContext) -> tuple[torch.Tensor, ...]:
    """Collect per-sample rows from every process, in dataset order, each sample once.

    The distributed sampler pads the last round by repeating samples so every process takes the same number
    of steps; keeping the first row of each dataset index drops those repeats, and sorting by index restores
    the dataset order, so the result equals a single process's pass.

    Args:
        indices: Dataset index of each row this process computed.
        tensors: Per-sample rows (same length as ``indices``), on the CPU.
        ctx: The run's distributed context.
    """
    index = torch.as_tensor(list(indices), dtype=torch.long)
    if ctx.distributed:
        parts: list[Any] = [None] * ctx.world_size
        dist.all_gather_object(parts, (index, *tensors))
        index = torch.cat([p[0] for p in parts])
        tensors = tuple(torch.cat([p[i + 1] for p in parts]) for i in range(len(tensors)))
    order = torch.argsort(index, stable=True)
    index = index[order]
    first = torch.ones_like(index, dtype=torch.bool)
    first[1:] = index[1:] != index[:-1]
    keep = order[first]
    return tuple(t[keep] for t in tensors)


def gather_to_main(indices: Sequence[int], *tensors: torch.Tensor, ctx: DistContext,
                   extra: Any = None) -> tuple[tuple[torch.Tensor, ...], list[Any]] | None:
    """Collect per-sample rows of every process on rank 0 only, in dataset order (``None`` on the others).

    For loaders that give each sample to exactly one process (no padding, see
    :class:`~clsctl.data.loaders.ShardedBatchSampler`): rows are sorted by dataset index, nothing is dropped.
    The objects travel over the CPU (gloo) group, so an NCCL run never stages them in GPU memory.

    Args:
        indices: Dataset index of each row this process computed.
        tensors: Per-sample rows (same length as ``indices``), on the CPU.
        ctx: The run's distributed context.
        extra: Any picklable value per process (e.g. its timing), returned as a list in rank order.

    Returns:
        On rank 0: the sorted tensors and every process's ``extra``.
    """
    index = torch.as_tensor(list(indices), dtype=torch.long)
    parts: list[Any] = [(index, tensors, extra)]
    if ctx.distributed:
        parts = [None] * ctx.world_size if ctx.is_main else None  # type: ignore[assignment]
        dist.gather_object((index, tensors, extra), parts, dst=0, group=ctx.control_group)
        if not ctx.is_main:
            return None
    extras = [p[2] for p in parts]
    parts = [p for p in parts if len(p[0])] or parts[:1]  # a process may have had no batch at all
    index = torch.cat([p[0] for p in parts])
    order = torch.argsort(index, stable=True)
    joined = tuple(torch.cat([p[1][i] for p in parts])[order] for i in range(len(tensors)))
    return joined, extras


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LaunchOptions:
    """How many processes to start, and where the run's rendezvous is."""

    nproc_per_node: int
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None


def launch_config(options: LaunchOptions) -> Any:
    """The elastic launcher's ``LaunchConfig`` for ``options``.

    One node without a master address uses a private c10d rendezvous on a free local port (torchrun's
    ``--standalone``); several nodes use the static rendezvous at ``master_addr:master_port`` with this
    node's rank, as ``torchrun --nnodes --node-rank --master-addr --master-port`` does.
    """
    from torch.distributed.launcher.api import LaunchConfig

    if options.nproc_per_node < 1 or options.nnodes < 1:
        raise ClsctlError("--gpus and --nnodes must be at least 1")
    if not 0 <= options.node_rank < options.nnodes:
        raise ClsctlError(f"--node-rank must be in [0, {options.nnodes - 1}], got {options.node_rank}")
    if options.nnodes > 1 and not options.master_addr:
        raise ClsctlError("--nnodes > 1 needs --master-addr (the host of node 0) and the same --master-port "
                          "on every node")
    if options.nnodes == 1 and not options.master_addr:
        backend, endpoint, configs = "c10d", f"127.0.0.1:{options.master_port or _free_port()}", {}
        run_id = uuid.uuid4().hex
    else:
        backend, endpoint = "static", f"{options.master_addr}:{options.master_port or 29500}"
        configs = {"rank": options.node_rank}
        run_id = "clsctl"
    return LaunchConfig(
        min_nodes=options.nnodes,
        max_nodes=options.nnodes,
        nproc_per_node=options.nproc_per_node,
        run_id=run_id,
        rdzv_backend=backend,
        rdzv_endpoint=endpoint,
        rdzv_configs=configs,
        max_restarts=0,  # a failed training step is not something to retry silently
        monitor_interval=0.1,
        start_method="spawn",
    )


@contextlib.contextmanager
def _restored_signal_handlers() -> Iterator[None]:
    """Put back the handlers the elastic launcher replaces (SIGTERM, SIGINT, SIGHUP, SIGQUIT) and never restores:
    a notebook or script that called :func:`~clsctl.engine.launch.launch_training` would otherwise turn every later Ctrl-C into the
    launcher's ``SignalException``."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can set handlers, so the launcher does not touch them either
        return
    names = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")  # the last two do not exist on Windows
    saved = {sig: signal.getsignal(sig) for sig in (getattr(signal, n) for n in names if hasattr(signal, n))}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:  # None: set from outside Python; nothing we could restore
                signal.signal(sig, handler)


@contextlib.contextmanager
def _worker_threads(nproc: int) -> Iterator[None]:
    """One OpenMP thread per worker unless the user chose, as torchrun does: N processes each using every
    core oversubscribe the CPU."""
    if nproc > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = "1"
        try:
            yield
        finally:
            os.environ.pop("OMP_NUM_THREADS", None)
    else:
        yield


def _setup_worker_logging(level: int) -> None:
    rank = int(os.environ.get("RANK", "0"))
    log = logging.getLogger("clsctl")
    log.handlers.clear()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(level if rank == 0 else max(level, logging.WARNING))  # rank 0 speaks for the run
    log.propagate = False


class WorkerError(ClsctlError):
    """A user error raised in the workers, re-raised in the launching process with its exit code."""


def check_gpu_count(processes: int, device: str | None) -> None:
    """Refuse more GPU worker processes than this machine has CUDA devices.

    Worker processes run on the CPU only when ``device`` says ``cpu`` explicitly (``--device cpu`` or the
    recipe's ``runtime.device``); ``auto`` never falls back to CPU workers, which would start ``processes``
    full-size CPU runs where GPU runs were meant.

    Raises:
        ClsctlError: Fewer CUDA devices than ``processes`` (the message says how many there are).
    """
    spec = (device or "auto").strip().lower()
    if spec == "cpu":
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if processes <= count:
        return
    have = "CUDA is not available here (0 GPUs)" if count == 0 else f"this machine has {count} GPU(s)"
    raise ClsctlError(f"--gpus {processes} asked for, but {have}; for {processes} CPU worker processes give "
                      f"--device cpu")
