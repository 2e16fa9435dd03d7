"""``clsctl prepare-data``."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli._render import console, handle_errors
from clsctl.errors import ClsctlError

DATASET_HELP = ("digits (offline, from scikit-learn), cifar10, cifar100, mnist, fashion-mnist (downloaded); or "
                "shards: write the image folder OUT_DIR as tar shards into SHARD_DIR.")


@handle_errors
def prepare_data_command(
    name: Annotated[str, typer.Argument(help=DATASET_HELP, show_default=False)],
    out_dir: Annotated[Optional[Path], typer.Argument(
        metavar="[OUT_DIR]", help="Folder that gets train/<class>/ and val/<class>/ (or -o; default: data/NAME); "
        "for shards: the image folder to read, SRC_DIR.", show_default=False)] = None,
    shard_dir: Annotated[Optional[Path], typer.Argument(
        help="For shards: the folder that gets shard-NNNNNN.tar, classes.txt and index.json (or -o).",
        show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Output folder: the image-folder tree, or for shards the shard folder.",
        show_default=False)] = None,
    download_root: Annotated[
        Optional[Path], typer.Option("--download-root", help="Where downloads are kept (default OUT_DIR/.download).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the digits train/val split (shards: of the sample "
                                                     "order).")] = 0,
    shard_size: Annotated[str, typer.Option(
        "--shard-size", help="For shards: largest shard, e.g. 1GB, 256MiB.")] = "1GB",
    classes: Annotated[Optional[Path], typer.Option(
        "--classes", help="For shards: class-name file (one per line); default: the sorted class folders.")] = None,
) -> None:
    """Write a public dataset as an image-folder tree (train/<class>/*.png, val/<class>/*.png), or an image
    folder as WebDataset tar shards: clsctl prepare-data shards SRC_DIR OUT_DIR [--shard-size 1GB]."""
    from clsctl.engine.progress import make_progress

    if name.lower() == "shards":
        if out_dir is None:
            raise typer.BadParameter("give the image folder to write as shards: clsctl prepare-data shards SRC_DIR "
                                     "OUT_DIR", param_hint="SRC_DIR")
        _write_shards(out_dir, _one_output(shard_dir, out), shard_size, classes, seed)
        return
    if shard_dir is not None:
        raise typer.BadParameter(f"a third argument goes with 'shards' only, not '{name}'")
    from clsctl.data.prepare import prepare_data

    out_dir = _one_output(out_dir, out) or Path("data") / name
    with make_progress() as progress:
        def factory(index: int, total: int):  # noqa: ANN202 - returns the advance callback
            task = progress.add_task(("train", "val")[index], total=total, status="")
            return lambda n: progress.advance(task, n)

        result = prepare_data(name, out_dir, download_root=download_root, seed=seed, progress=factory)
    counts = ", ".join(f"{split}: {count}" for split, count in result.counts.items())
    console.print(f"wrote {out_dir} ({len(result.classes)} classes; {counts} images)")


def _one_output(positional: Optional[Path], option: Optional[Path]) -> Optional[Path]:
    """The output folder given as an argument or with -o (not two different ones)."""
    if positional is not None and option is not None and positional != option:
        raise ClsctlError(f"two output folders: {positional} and --out {option}; give one")
    return option or positional


def _write_shards(src_dir: Path, out_dir: Optional[Path], shard_size: str, classes: Optional[Path],
                  seed: int) -> None:
    from clsctl.data.write_shards import parse_size, write_shards
    from clsctl.engine.progress import make_progress

    if out_dir is None:
        raise typer.BadParameter("give the folder for the shards: clsctl prepare-data shards SRC_DIR OUT_DIR",
                                 param_hint="SHARD_DIR")
    size = parse_size(shard_size)
    with make_progress() as progress:
        task: list[int] = []
        result = write_shards(
            src_dir, out_dir, shard_size=size, classes=classes, seed=seed,
            on_start=lambda total: task.append(progress.add_task("shards", total=total, status="")),
            progress=lambda n: progress.advance(task[0], n))
    console.print(f"wrote {len(result.shards)} shard(s), {result.samples} samples of {len(result.classes)} classes, "
                  f"to {out_dir}", highlight=False)
    console.print(f"recipe: {{type: webdataset, urls: {result.pattern}}}", highlight=False, markup=False)
