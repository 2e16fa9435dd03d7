"""The one decode layer: every format gives the pixels Pillow (with the EXIF orientation applied) gives, through
every backend and every path that reads images (files, bytes, datasets for training and evaluation, tar shards,
the readers tools use, the server's bytes), and bombs are refused before their pixels are decoded."""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from clsctl.data import decode as D

RNG = np.random.default_rng(0)
RGB = (RNG.random((37, 53, 3)) * 255).astype(np.uint8)


def _write(folder: Path) -> dict[str, Path]:
    """One file of every kind the layer must agree on."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}

    def save(name: str, image: Image.Image, **options: object) -> None:
        image.save(folder / name, **options)
        files[name] = folder / name

    save("rgb.jpg", Image.fromarray(RGB), quality=90)
    save("grey.jpg", Image.fromarray(RGB[:, :, 0]), quality=90)
    save("cmyk.jpg", Image.fromarray(RGB).convert("CMYK"), quality=90)
    save("rgba.png", Image.fromarray(np.dstack([RGB, RGB[:, :, 0]])))
    save("grey.png", Image.fromarray(RGB[:, :, 1]))
    save("palette.png", Image.fromarray(RGB).quantize(16))
    save("16bit.png", Image.fromarray((RNG.random((37, 53)) * 65535).astype(np.uint16)))
    save("lossless.webp", Image.fromarray(RGB), lossless=True)
    save("rgb.bmp", Image.fromarray(RGB))
    save("rgb.tif", Image.fromarray(RGB))
    frames = [Image.fromarray(RGB).quantize(32), Image.fromarray(255 - RGB).quantize(32)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    files["anim.gif"] = folder / "anim.gif"
    for orientation in (3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        save(f"exif{orientation}.jpg", Image.fromarray(RGB), quality=95, exif=exif.tobytes())
    return files


def _pillow(path: Path) -> np.ndarray:
    """What Pillow gives, upright (``exif_transpose``), first frame, 16-bit scaled by 1/257."""
    with Image.open(path) as image:
        image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image)
        if image.mode.startswith("I;16"):
            grey = np.clip(np.rint(np.asarray(image).astype(np.float32) / 257), 0, 255).astype(np.uint8)
            return np.repeat(grey[:, :, None], 3, axis=2)
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _write(tmp_path_factory.mktemp("formats"))


@pytest.mark.parametrize("backend", ["auto", "torchvision", "pillow"])
def test_every_format_gives_pillows_upright_pixels(files: dict[str, Path], backend: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLSCTL_DECODER", backend)
    D.torchcodec_decoder.cache_clear()
    try:
        for name, path in files.items():
            image = D.decode_file(path)
            assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3, name
            np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), _pillow(path), err_msg=name)
    finally:
        D.torchcodec_decoder.cache_clear()
    assert D.decode_file(files["exif6.jpg"]).shape == (3, 53, 37)  # stored 53 wide, upright 53 tall
    assert D.decode_file(files["16bit.png"]).float().mean() < 200  # scaled, not clipped to 255


def test_torchcodec_is_used_where_installed(files: dict[str, Path]) -> None:
    pytest.importorskip("torchcodec")
    D.torchcodec_decoder.cache_clear()
    if D.torchcodec_decoder() is None:
        pytest.skip("torchcodec is installed but does not load with this torch")
    assert D.backend_name() == "torchcodec"


def test_every_path_that_reads_images_gives_the_same_pixels(files: dict[str, Path], tmp_path: Path) -> None:
    from clsctl.data.datasets import ImageListDataset
    from clsctl.data.transforms import build_pipeline
    from clsctl.readers import read_image, read_image_tensor

    identity = build_pipeline([], [0.0] * 3, [1.0] * 3, output="uint8")  # training's (uint8) pipeline, no steps
    names = sorted(files)
    dataset = ImageListDataset([(str(files[n]), 0) for n in names], ["x"], identity)
    tools = ImageListDataset([(str(files[n]), 0) for n in names], ["x"])  # no transform: PIL, for tools
    shard = tmp_path / "shard-000000.tar"
    with tarfile.open(shard, "w") as tar:
        for index, name in enumerate(names):
            for ext, data in ((Path(name).suffix[1:], files[name].read_bytes()), ("cls", b"0")):
                info = tarfile.TarInfo(f"{index:04d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    from clsctl.data.shards import IMAGE_EXTENSIONS, ShardDataset

    shard_images = {}
    for image, _, key in ShardDataset([str(shard)], ["x"], None).iter_samples():
        shard_images[int(key.rsplit(":", 1)[1])] = np.asarray(image)
    for index, name in enumerate(names):
        expected = D.decode_file(files[name]).permute(1, 2, 0).numpy()
        got = {
            "bytes": D.decode(files[name].read_bytes(), name).permute(1, 2, 0).numpy(),
            "dataset (training and evaluation)": dataset[index][0].permute(1, 2, 0).numpy(),
            "dataset (tools)": np.asarray(tools[index][0]),
            "read_image": np.asarray(read_image(files[name])),
            "read_image_tensor": read_image_tensor(files[name]).permute(1, 2, 0).numpy(),
            "tar shard": shard_images.get(index),
        }
        for where, pixels in got.items():
            if where == "tar shard" and Path(name).suffix[1:] not in IMAGE_EXTENSIONS:
                continue  # not a shard image kind (GIF)
            assert pixels is not None, (name, where)
            np.testing.assert_array_equal(pixels, expected, err_msg=f"{name} via {where}")


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG announcing ``width x height`` pixels whose data is a few bytes: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 30000, 30000)
    assert bomb.stat().st_size < 200
    with pytest.raises(D.ImageTooLargeError, match=r"30000x30000 = 900,000,000 pixels, over the limit of 178,956,970"):
        D.decode_file(bomb)
    small = tmp_path / "small.png"
    Image.fromarray(RGB).save(small)
    monkeypatch.setenv(D.MAX_IMAGE_PIXELS_ENV, "100")
    with pytest.raises(D.ImageTooLargeError, match="CLSCTL_MAX_IMAGE_PIXELS"):
        D.decode_file(small)
    D.set_max_image_pixels(10**9)
    try:
        assert D.max_image_pixels() == 10**9
        assert D.probe(bomb.read_bytes()).pixels == 900_000_000  # raised above Pillow's own threshold: allowed
    finally:
        D.set_max_image_pixels(None)
    assert D.max_image_pixels() == D.DEFAULT_MAX_IMAGE_PIXELS


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        D.read_bytes(fifo)  # refused at once: never opened for a blocking read
    with pytest.raises(OSError, match="not a regular file"):
        D.read_bytes("/dev/zero")
    with pytest.raises(OSError, match="empty file"):
        D.decode(b"")
    with pytest.raises(OSError, match="cannot decode"):
        D.decode(b"not an image at all", "junk.png")


def test_animations_decode_their_first_frame_only(tmp_path: Path) -> None:
    frames = [Image.fromarray(np.full((4, 4, 3), i % 256, dtype=np.uint8)).quantize(8) for i in range(2000)]
    frames[0].save(tmp_path / "long.gif", save_all=True, append_images=frames[1:])
    header = D.probe((tmp_path / "long.gif").read_bytes())
    assert header.animated and header.format == "GIF"
    assert D.decode_file(tmp_path / "long.gif").shape == (3, 4, 4)


def test_orientation_turns_like_pillows_exif_transpose() -> None:
    image = torch.arange(2 * 3 * 3).reshape(3, 2, 3).to(torch.uint8)
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    for orientation in range(1, 9):
        exif = pil.getexif()
        exif[0x0112] = orientation
        turned = np.asarray(ImageOps.exif_transpose(_with_exif(pil, exif)))
        np.testing.assert_array_equal(D.apply_orientation(image, orientation).permute(1, 2, 0).numpy(), turned,
                                      err_msg=str(orientation))


def _with_exif(image: Image.Image, exif: Image.Exif) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif.tobytes())
    return Image.open(io.BytesIO(buffer.getvalue()))
