"""The last step of the input pipeline, on the device: uint8 batches -> normalised float batches.

Loader workers decode and augment images as ``(3, H, W)`` uint8 tensors and collate them; the main process
copies each uint8 batch to the device (from pinned memory, without waiting: ``non_blocking``), where it is
converted to float, scaled to [0, 1], normalised by mean and std, put in the model's channel order and memory
format, and cast to the autocast dtype, as DALI and FFCV do. A quarter of the bytes cross the PCIe bus and no
CPU core spends time on float arithmetic. Batches a pipeline already normalised (one with ``lighting`` or
``random_erasing`` steps, which need float pixels) are only copied.

With ``data.decode: gpu`` (see :mod:`clsctl.data.gpu_decode`) the batch holds JPEG bytes, decoded here first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class DeviceInput:
    """Turns a loader batch into the model's input on ``device``.

    Args:
        mean: Per-channel mean of [0, 1] pixels, RGB order.
        std: Per-channel standard deviation, RGB order.
        channel_order: ``rgb`` or ``bgr`` (the model's).
        decoder: Decodes batches of encoded images on the device (``data.decode: gpu``), or None.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], channel_order: str = "rgb",
                 decoder: Any = None) -> None:
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be rgb or bgr, got {channel_order!r}")
        # (3, 1, 1): broadcasts over (N, 3, H, W) batches and (N, V, 3, H, W) batches of test-time views
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(3, 1, 1)
        self.bgr = channel_order == "bgr"
        self.decoder = decoder
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._on:  # copied once per device, not once per batch
            self._on[device] = (self.mean.to(device), self.std.to(device))
        return self._on[device]

    def __call__(self, images: Any, targets: Any, device: torch.device, *, dtype: torch.dtype | None = None,
                 channels_last: bool = False) -> tuple[torch.Tensor, Any]:
        """The images on ``device``, normalised (in ``dtype``, default float32), and the targets (left where they
        are: the caller moves them if it needs them there).

        Args:
            images: ``(N, 3, H, W)`` uint8 (normalised here), float (already normalised on the CPU: only
                copied), or an encoded batch for the decoder.
            targets: The batch's targets (a decoder may replace those of unreadable images).
            device: Where the model is.
            dtype: The autocast dtype (bf16/fp16), or None for float32.
            channels_last: Deliver the batch in channels_last memory format.
        """
        if self.decoder is not None and self.decoder.handles(images):
            images, targets = self.decoder(images, targets, device)  # uint8 on the device
        channels_last = channels_last and images.ndim == 4  # a memory format of 4-D tensors only
        layout = torch.channels_last if channels_last else torch.contiguous_format
        if images.dtype != torch.uint8:  # normalised on the CPU already
            images = images.to(device, non_blocking=True)
            return images.contiguous(memory_format=layout) if channels_last else images, targets
        # The host-to-device copy is queued on the current stream; the kernels below run after it on the same
        # stream, so no synchronisation is needed (and none happens: the host does not wait).
        images = images.to(device, non_blocking=True)
        if self.bgr:
            images = images.flip(-3)  # on uint8 (a quarter of the bytes); the statistics are RGB
        mean, std = self._stats(images.device)
        if self.bgr:
            mean, std = mean.flip(0), std.flip(0)
        # One kernel converts and lays out; the in-place ones keep the layout. The same arithmetic as
        # ToTensor + Normalize (x / 255, - mean, / std), so float32 results equal the CPU pipeline's exactly;
        # the cast to the autocast dtype comes last, rounding once.
        out = images.to(torch.float32, memory_format=layout)
        out.div_(255).sub_(mean).div_(std)
        if dtype is not None and dtype != torch.float32:
            out = out.to(dtype)  # preserve_format: stays channels_last
        return out, targets
