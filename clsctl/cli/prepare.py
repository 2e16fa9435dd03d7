"""``clsctl prepare-data``."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from clsctl.cli._render import console, handle_errors

DATASET_HELP = "digits (offline, from scikit-learn), cifar10, cifar100, mnist, fashion-mnist (downloaded)."


@handle_errors
def prepare_data_command(
    name: Annotated[str, typer.Argument(help=DATASET_HELP, show_default=False)],
    out_dir: Annotated[Path, typer.Argument(help="Folder that gets train/<class>/ and val/<class>/.", show_default=False)],
    download_root: Annotated[
        Optional[Path], typer.Option("--download-root", help="Where downloads are kept (default OUT_DIR/.download).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the digits train/val split.")] = 0,
) -> None:
    """Write a public dataset as an image-folder tree (train/<class>/*.png, val/<class>/*.png)."""
    from clsctl.data.prepare import prepare_data
    from clsctl.engine.progress import make_progress

    with make_progress() as progress:
        def factory(index: int, total: int):  # noqa: ANN202 - returns the advance callback
            task = progress.add_task(("train", "val")[index], total=total, status="")
            return lambda n: progress.advance(task, n)

        result = prepare_data(name, out_dir, download_root=download_root, seed=seed, progress=factory)
    counts = ", ".join(f"{split}: {count}" for split, count in result.counts.items())
    console.print(f"wrote {out_dir} ({len(result.classes)} classes; {counts} images)")
