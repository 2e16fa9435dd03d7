"""``clsctl benchmark``."""

import json
from enum import Enum
from typing import Annotated, Optional

import typer

from clsctl.cli.completions import complete_model_or_file
from rich.table import Table

from clsctl.cli._options import DeviceOpt, SetOpt
from clsctl.cli._render import console, handle_errors, human_count


class Mode(str, Enum):
    """What one timed iteration does."""

    infer = "infer"
    train = "train"


class Amp(str, Enum):
    """Autocast precision."""

    bf16 = "bf16"
    fp16 = "fp16"


def parse_shape(values: list[str] | None) -> tuple[int, int] | None:
    """``224`` -> (224, 224); ``224 256``, ``224x256`` or ``224,256`` -> (224, 256)."""
    if not values:
        return None
    sizes = []
    for value in values:
        for part in value.lower().replace(",", "x").split("x"):
            if not part.strip().isdigit():
                raise typer.BadParameter(f"'{value}' is not a size", param_hint="--shape")
            sizes.append(int(part))
    if len(sizes) not in (1, 2):
        raise typer.BadParameter(f"one size (square) or two (height width), got {len(sizes)}", param_hint="--shape")
    return (sizes[0], sizes[-1])


@handle_errors
def benchmark_command(
    source: Annotated[str, typer.Argument(
        metavar="MODEL|RECIPE|CHECKPOINT", help="Registered model name, recipe YAML or checkpoint.",
        show_default=False, autocompletion=complete_model_or_file)],
    mode: Annotated[Mode, typer.Option("--mode", help="infer: forward only; train: forward, backward, "
                                       "optimizer step.")] = Mode.infer,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per iteration.")] = 32,
    shape: Annotated[Optional[list[str]], typer.Option(
        "--shape", help="Input size: 224 (square) or 224 256 (height width); default the model's.",
        show_default=False)] = None,
    amp: Annotated[Optional[Amp], typer.Option("--amp", help="Autocast precision (bf16 works on CPU too).",
                                               show_default=False)] = None,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Channels-last memory format.")] = False,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the model (compiled in warm-up).")] = False,
    fuse_conv_bn: Annotated[bool, typer.Option(
        "--fuse-conv-bn", help="Measure the deploy form: re-parameterized blocks, BatchNorm folded into convs.")] = False,
    iters: Annotated[int, typer.Option("--iters", min=1, help="Timed iterations.")] = 50,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed iterations first.")] = 10,
    device: DeviceOpt = None,
    overrides: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Throughput, latency and peak memory of a model (img/s, ms per batch and per image).

    Measured as model-zoo tables are: warm-up excluded, CUDA-synchronised timers, forward only under
    inference_mode for --mode infer. Peak memory is torch.cuda.max_memory_allocated on a GPU, the process's
    peak resident set on CPU.
    """
    from clsctl.deploy.benchmark import BenchmarkSettings, run_benchmark

    settings = BenchmarkSettings(
        source=source, mode=mode.value, batch_size=batch_size, shape=parse_shape(shape),
        amp=amp.value if amp is not None else None, channels_last=channels_last, compile=compile_,
        fuse_conv_bn=fuse_conv_bn, iters=iters, warmup=warmup, device=device, overrides=tuple(overrides or ()))
    result = run_benchmark(settings)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    options = [f"amp {settings.amp}" if settings.amp else "fp32"]
    options += [name for name, on in (("channels-last", channels_last), ("compiled", compile_),
                                      ("deploy form", fuse_conv_bn)) if on]
    shape_text = "x".join(str(s) for s in result.input_shape)
    table = Table(title=f"{result.model_name} {settings.mode} on {result.device} ({result.device_name})")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("input", f"{shape_text}, {', '.join(options)}")
    # at least three significant digits, so a slow model (a few img/s) is not rounded by several per cent
    decimals = 1 if result.images_per_second >= 100 else 3
    table.add_row("throughput", f"{result.images_per_second:,.{decimals}f} img/s")
    table.add_row("ms / batch (median)", f"{result.ms_per_batch:.2f}")
    table.add_row("ms / batch (p10 - p90)", f"{result.ms_per_batch_p10:.2f} - {result.ms_per_batch_p90:.2f}")
    table.add_row("ms / image (median)", f"{result.ms_per_image:.3f}")
    table.add_row(f"peak memory ({result.peak_memory_kind})", f"{result.peak_memory_mb:,.0f} MiB")
    table.add_row("params", human_count(result.params))
    table.add_row("iterations", f"{settings.iters} timed after {settings.warmup} warm-up")
    console.print(table)
