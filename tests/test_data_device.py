"""clsctl.data.device: uint8 batches normalised where the model is, equal to the CPU pipeline's output."""

import numpy as np
import pytest

from clsctl.data.preprocessing import validate_steps
import torch
from PIL import Image

from clsctl.data.dataset_base import seed_sample
from clsctl.data.device import DeviceInput
from clsctl.data.transforms import build_pipeline

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def _steps(*entries: dict) -> list:
    return validate_steps(list(entries))


def _photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))


def test_uint8_output_normalised_on_the_device_equals_the_float_pipeline() -> None:
    steps = _steps({"type": "random_resized_crop", "size": 24}, {"type": "random_horizontal_flip"})
    for order in ("rgb", "bgr"):
        on_cpu = build_pipeline(steps, MEAN, STD, channel_order=order)
        deferred = build_pipeline(steps, MEAN, STD, channel_order=order, output="uint8")
        images = [_photo(s) for s in range(4)]
        expected, raw = [], []
        for seed, image in enumerate(images):
            seed_sample(seed)
            expected.append(on_cpu(image))
            seed_sample(seed)
            raw.append(deferred(image))
        batch = torch.stack(raw)
        assert batch.dtype == torch.uint8
        out, _ = DeviceInput(MEAN, STD, order)(batch, None, torch.device("cpu"))
        assert torch.equal(out, torch.stack(expected))  # the same arithmetic, bit for bit
        half, _ = DeviceInput(MEAN, STD, order)(batch, None, torch.device("cpu"), dtype=torch.bfloat16,
                                                channels_last=True)
        assert half.dtype == torch.bfloat16 and half.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(half.float(), out, atol=0.02, rtol=0.01)
    floats = torch.randn(2, 3, 4, 4)  # a pipeline that normalised on the CPU: only copied
    assert torch.equal(DeviceInput(MEAN, STD)(floats, None, torch.device("cpu"))[0], floats)


def test_pipelines_with_float_steps_normalise_on_the_cpu_and_the_device_step_only_copies() -> None:
    steps = _steps({"type": "center_crop", "size": 16}, {"type": "lighting"})
    pipeline = build_pipeline(steps, MEAN, STD, output="uint8")
    seed_sample(0)
    out = pipeline(_photo(1))
    assert out.dtype == torch.float32 and out.shape == (3, 16, 16)
    moved, targets = DeviceInput(MEAN, STD)(out[None], torch.tensor([2]), torch.device("cpu"))
    assert torch.equal(moved[0], out) and targets.tolist() == [2]


def test_device_input_normalises_and_refuses_a_bad_channel_order() -> None:
    batch = torch.full((2, 3, 4, 4), 51, dtype=torch.uint8)
    out, _ = DeviceInput((0.2, 0.2, 0.2), (0.5, 0.5, 0.5))(batch, None, torch.device("cpu"))
    torch.testing.assert_close(out, torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="channel_order"):
        DeviceInput(MEAN, STD, "rbg")
