"""``data.decode: gpu``: bytes from the workers, batch decoding, per-file fallbacks, the error without CUDA.

The batch logic runs here with ``decode_device="cpu"`` (torchvision's CPU ``decode_jpeg`` takes the same list
of tensors); the CUDA run itself is in ``test_cuda.py``.
"""

import logging
import random
from pathlib import Path

import numpy as np
import pytest

from clsctl.data.preprocessing import validate_steps
import torch
import yaml
from PIL import Image
from pydantic import TypeAdapter
from torch.utils.data import DataLoader

from clsctl.data.dataset_base import seed_sample
from clsctl.data.datasets import build_dataset, encode_jpegs
from clsctl.data.gpu_decode import BatchDecoder, EncodedBatch, EncodedImage, collate
from clsctl.data.transforms import build_pipeline
from clsctl.errors import DataError, RecipeError
from clsctl.recipe import schema as S

MEAN, STD = [0.5] * 3, [0.25] * 3
STEPS = validate_steps([{"type": "random_resized_crop", "size": 16}, {"type": "random_horizontal_flip"}])


def _folder(root: Path, broken: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for index in range(5):
        folder = root / ("a" if index % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (24 + index, 30, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.{'png' if index == 4 else 'jpg'}", quality=90)
    if broken:  # starts and ends like a JPEG, garbage between: only decoding finds out
        (root / "a" / "9.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9")
    return root


def _dataset(root: Path, on_bad_image: str = "skip") -> object:
    config = TypeAdapter(S.Dataset).validate_python({"type": "image_folder", "root": str(root)})
    return build_dataset(config, build_pipeline(STEPS, MEAN, STD, output="uint8"), on_bad_image=on_bad_image)


def test_workers_give_jpeg_bytes_and_decode_other_formats_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dataset = _dataset(_folder(tmp_path))
    assert encode_jpegs(dataset, "train")
    with caplog.at_level(logging.WARNING, logger="clsctl"):
        items = [dataset[(i, 7)] for i in range(len(dataset))]
    kinds = [type(image).__name__ for image, _ in items]
    png = [i for i, (path, _) in enumerate(dataset.samples) if path.endswith(".png")][0]
    assert kinds.count("EncodedImage") == 4 and kinds[png] == "Tensor"
    assert "4.png is not a complete JPEG" in caplog.text
    assert all(image.seed == 7 and image.split == "train" for image, _ in items if isinstance(image, EncodedImage))
    images, targets = collate(items)
    assert isinstance(images, EncodedBatch) and len(images) == 5 and targets.tolist() == dataset.targets


def test_batch_decoding_equals_the_cpu_pipeline_and_keeps_the_main_process_rng(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    cpu = _dataset(root)
    encoded = _dataset(root)
    encode_jpegs(encoded, "train")
    keys = [(i, 1000 + i) for i in range(len(cpu))]
    decoder = BatchDecoder({"train": build_pipeline(STEPS, MEAN, STD, output="uint8")}, decode_device="cpu")
    batch = collate([encoded[key] for key in keys])  # (the PNG is transformed here, as in a worker)
    torch.manual_seed(5)
    random.seed(5)
    before = (torch.get_rng_state(), random.random())
    torch.manual_seed(5)
    random.seed(5)
    images, targets = decoder(*batch, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before[0]) and random.random() == before[1]
    expected = torch.stack([cpu[key][0] for key in keys])
    assert images.dtype == torch.uint8 and torch.equal(images, expected)  # same libjpeg, same seeds
    assert targets.tolist() == cpu.targets


def test_a_jpeg_the_decoder_refuses_is_replaced_within_the_batch_or_fails(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.io

    from clsctl.data import decode as D

    dataset = _dataset(_folder(tmp_path))
    encode_jpegs(dataset, "val")
    bad = [i for i, (path, _) in enumerate(dataset.samples) if path.endswith("3.jpg")][0]
    items = [dataset[(i, i)] for i in range(len(dataset))]
    refused = items[bad][0].data
    real_jpeg, real_decode = torchvision.io.decode_jpeg, D.decode

    def jpeg(data, *args, **kwargs):  # nvJPEG (here: libjpeg) refuses that one file, in a batch call or alone
        if isinstance(data, list):
            if any(d is refused for d in data):
                raise RuntimeError("refused")
            return real_jpeg(data, *args, **kwargs)
        if data is refused:
            raise RuntimeError("refused")
        return real_jpeg(data, *args, **kwargs)

    def cpu(data, name="<bytes>"):  # and so does the CPU fallback
        if data is refused:
            raise OSError(f"cannot decode {name}")
        return real_decode(data, name)

    monkeypatch.setattr(torchvision.io, "decode_jpeg", jpeg)
    monkeypatch.setattr(D, "decode", cpu)
    transform = build_pipeline(STEPS, MEAN, STD, output="uint8")
    decoder = BatchDecoder({"val": transform}, decode_device="cpu")
    with caplog.at_level(logging.WARNING, logger="clsctl"):
        images, targets = decoder(*collate(items), torch.device("cpu"))
    assert images.shape == (len(items), 3, 16, 16) and decoder.bad_images == 1
    assert targets[bad] == -1 and "skipping unreadable image" in caplog.text  # evaluation leaves it out
    failing = BatchDecoder({"val": transform}, on_bad_image="fail", decode_device="cpu")
    with pytest.raises(DataError, match="3.jpg"):
        failing(*collate(items), torch.device("cpu"))


def test_a_jpeg_whose_header_does_not_parse_goes_the_cpu_way(tmp_path: Path) -> None:
    root = _folder(tmp_path, broken=True)  # starts and ends like a JPEG, garbage between
    dataset = _dataset(root)
    encode_jpegs(dataset, "val")
    exclude = [i for i, (path, _) in enumerate(dataset.samples) if path.endswith("9.jpg")][0]
    image, _ = dataset[(exclude, 1)]
    assert isinstance(image, torch.Tensor) and dataset.bad_image_count == 1  # replaced by the worker, as on CPU


def test_a_loader_over_encoded_jpegs_collates_them(tmp_path: Path) -> None:
    from clsctl.data.loaders import build_loader

    dataset = _dataset(_folder(tmp_path))
    encode_jpegs(dataset, "train")
    loader = build_loader(dataset, S.LoaderConfig(batch_size=5, num_workers=0), train=True)
    images, targets = next(iter(loader))
    assert isinstance(images, EncodedBatch) and len(targets) == 5
    plain = DataLoader(_dataset(_folder(tmp_path / "again")), batch_size=5, collate_fn=collate)
    assert next(iter(plain))[0].dtype == torch.uint8  # nothing encoded: the default collate


def test_gpu_decode_without_cuda_is_a_clear_error(tmp_path: Path, image_root: Path, runner: object) -> None:
    from clsctl.cli.main import app
    from clsctl.engine.build import device_input
    from clsctl.recipe import validate_recipe
    from helpers import tiny_recipe_dict

    data = tiny_recipe_dict(image_root, tmp_path / "run", device="cpu")
    data["data"]["decode"] = "gpu"
    with pytest.raises(RecipeError, match="data.decode: gpu .* CUDA"):
        device_input(validate_recipe(data), torch.device("cpu"))
    path = tmp_path / "gpu.yaml"
    data["data"]["decode"] = "cpu"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = runner.invoke(app, ["train", str(path), "--device", "cpu", "--set", "data.decode=gpu"])
    assert result.exit_code == 2 and "data.decode: gpu" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run" / "last.pt").exists()
