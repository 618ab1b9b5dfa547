"""Pixel side of TVTSv2's video reading: the three transforms (Pillow-exact) and the per-frame converters.

This file is a flat Hub file (torch and numpy only; PyAV frames are handled through their own methods).

Transforms (:func:`preprocess_frames`, ``S`` = image size, 224 for all released models)
    * ``"eval"``: shorter side to ``int(1.2 S)`` (268) with Pillow-exact NEAREST interpolation (longer side
      ``int(268 * long / short)``), centre crop ``S`` (torchvision's ``round((size - S) / 2)`` offsets), /255,
      ImageNet mean/std. This is the original evaluation transform, bit-exact with Pillow.
    * ``"extract"``: bilinear squash to ``S x S`` (no crop), as the original feature-extraction script did with
      ``torchvision.transforms.Resize((S, S))`` on PIL images. torch's antialiased uint8 bilinear kernel is used;
      it matches Pillow's bilinear within one grey level (about 99 % of values identical).
    * ``"train"``: the ``"eval"`` resize, then one random ``S x S`` crop shared by all frames (no flip, no colour
      jitter), as the original training transform.
    ImageNet mean/std are the defaults because every original TVTSv2 pipeline used them, not CLIP's constants.
    Resize and crop are one gather of the source pixels that land in the crop (:func:`_crop_indices`).

Frame converters (:class:`FrameConverter` and subclasses)
    What a read keeps of each decoded frame, as soon as it comes out of the decoder: the whole RGB frame
    (``read_video``), or only its resized crop / squashed frame (``read_video_pixels``). For 4:2:0 video the crop
    converts only the pixels inside it to RGB, so memory stays near one decoded frame plus the output whatever the
    source resolution; pixels and random draws are exactly those of ``preprocess_frames(read_video(...))``.
    :func:`normalize_frames` / :func:`normalize_video_pixels` then rescale and normalise (the latter for uint8
    pixels kept as uint8 until they reach the accelerator).

Decoded-video inputs (:func:`is_decoded_video`, :func:`to_uint8_video`)
    Already-decoded videos (``[T, H, W, C]`` arrays/tensors, lists of ``[H, W, C]`` frames, channels first or
    last, greyscale/RGB/RGBA) are accepted wherever a file is, as uint8 RGB ``[T, H, W, 3]``.
"""

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD


__all__ = [
    "TRANSFORMS",
    "CropConverter",
    "FrameConverter",
    "SquashConverter",
    "is_decoded_video",
    "is_frame",
    "normalize_frames",
    "normalize_video_pixels",
    "preprocess_frames",
    "to_uint8_video",
]

TRANSFORMS = ("eval", "extract", "train")


# --------------------------------------------------------------------------------------------------------------
# Decoded-video inputs
# --------------------------------------------------------------------------------------------------------------


def is_decoded_video(video: Any) -> bool:
    """An already-decoded video: a [T, H, W, C] array/tensor or a list of [H, W, C] frames."""
    if isinstance(video, (str, os.PathLike, bytes, bytearray, memoryview)):
        return False
    if isinstance(video, torch.Tensor) or hasattr(video, "__array_interface__") or hasattr(video, "__array__"):
        return True
    if isinstance(video, (list, tuple)):
        return len(video) > 0 and all(is_frame(f) for f in video)
    return False


def is_frame(frame: Any) -> bool:
    """One decoded frame: a 3-D array/tensor, a PIL image or another array-like."""
    if isinstance(frame, torch.Tensor):
        return frame.ndim == 3
    if isinstance(frame, np.ndarray):
        return frame.ndim == 3
    # PIL images and other array-likes
    return hasattr(frame, "__array_interface__") or hasattr(frame, "__array__")


def to_uint8_video(video: Any) -> torch.Tensor:
    """An already-decoded video as a uint8 tensor [T, H, W, 3] (channels last)."""
    if isinstance(video, (list, tuple)):
        frames = [f if isinstance(f, torch.Tensor) else torch.as_tensor(np.asarray(f)) for f in video]
        if any(f.ndim == 2 for f in frames):  # greyscale frames
            frames = [f[..., None] if f.ndim == 2 else f for f in frames]
        shapes = {tuple(f.shape) for f in frames}
        if len(shapes) != 1:
            raise ValueError(f"the frames of one video must all have the same shape, got {sorted(shapes)}")
        tensor = torch.stack(frames)
    elif isinstance(video, torch.Tensor):
        tensor = video
    else:
        tensor = torch.as_tensor(np.asarray(video))
    if tensor.ndim != 4:
        shape = list(tensor.shape)
        raise ValueError(f"a decoded video must be [T, H, W, C] (or a list of [H, W, C] frames), got {shape}")
    if tensor.shape[-1] not in (1, 3, 4) and tensor.shape[1] in (1, 3, 4):
        tensor = tensor.permute(0, 2, 3, 1)  # channels-first input
    channels = tensor.shape[-1]
    if channels == 4:
        tensor = tensor[..., :3]  # drop alpha
    elif channels == 1:
        tensor = tensor.expand(-1, -1, -1, 3)
    elif channels != 3:
        raise ValueError(f"expected 1, 3 or 4 channels (last dimension), got shape {list(tensor.shape)}")
    if tensor.dtype != torch.uint8:
        if tensor.is_floating_point() or tensor.is_complex():
            raise ValueError(
                f"decoded frames must be uint8 (0..255), got {tensor.dtype}; convert with (x * 255).round() if "
                "they are in [0, 1]"
            )
        if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) > 255):
            raise ValueError(f"integer frames must hold values 0..255, got {int(tensor.min())}..{int(tensor.max())}")
        tensor = tensor.to(torch.uint8)
    if tensor.shape[0] == 0:
        raise ValueError("the decoded video has no frames")
    return tensor.contiguous()


# --------------------------------------------------------------------------------------------------------------
# Pixel transforms
# --------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _pil_nearest_indices(size_in: int, size_out: int) -> torch.Tensor:
    """Source index of each output pixel of Pillow's NEAREST resize along one axis.

    Pillow (``ImagingScaleAffine``) walks a double ``x = scale / 2`` and adds ``scale = in / out`` once per output
    pixel, truncating to int. The rounding of that running sum is what ``F.interpolate`` does not reproduce, so
    the same sequential double-precision loop is run here (Python floats are IEEE doubles).
    """
    scale = size_in / size_out
    x = scale * 0.5
    indices = []
    for _ in range(size_out):
        indices.append(min(int(x), size_in - 1))
        x += scale
    return torch.tensor(indices, dtype=torch.long)


def _short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """torchvision ``Resize(int)`` on a PIL image: the shorter side becomes ``short_side``, the other
    ``int(short_side * long / short)`` (truncated)."""
    if width <= height:
        return int(short_side * height / width), short_side
    return short_side, int(short_side * width / height)


def _center_offsets(height: int, width: int, crop_h: int, crop_w: int) -> tuple[int, int]:
    """torchvision ``CenterCrop`` offsets: ``int(round((size - crop) / 2))`` (Python's round: halves to even)."""
    return int(round((height - crop_h) / 2.0)), int(round((width - crop_w) / 2.0))


def _crop_indices(
    height: int,
    width: int,
    mode: str,
    short_side: int,
    crop_size: tuple[int, int],
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source rows and columns of the ``"eval"``/``"train"`` output: Pillow-NEAREST resize of the shorter side to
    ``short_side``, then the centre crop (eval) or one random crop drawn from ``generator`` (train)."""
    crop_h, crop_w = crop_size
    new_h, new_w = _short_side_size(height, width, short_side)
    if new_h < crop_h or new_w < crop_w:
        raise ValueError(f"resized frames {new_h}x{new_w} are smaller than the crop {crop_h}x{crop_w}")
    if mode == "eval":
        top, left = _center_offsets(new_h, new_w, crop_h, crop_w)
    else:  # torchvision RandomCrop.get_params: one location for the whole clip
        top = int(torch.randint(0, new_h - crop_h + 1, (1,), generator=generator))
        left = int(torch.randint(0, new_w - crop_w + 1, (1,), generator=generator))
    rows = _pil_nearest_indices(height, new_h)[top : top + crop_h]
    cols = _pil_nearest_indices(width, new_w)[left : left + crop_w]
    return rows, cols


def _squash(frames: torch.Tensor, crop_size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> ``[T, crop_h, crop_w, 3]``: the ``"extract"`` bilinear squash (no crop).

    torchvision Resize((S, S)) on PIL = Pillow bilinear with antialiasing; torch's uint8 antialiased kernel follows
    Pillow's fixed-point algorithm (within one grey level). Each frame is computed on its own (batch-independent).
    """
    squashed = F.interpolate(
        frames.permute(0, 3, 1, 2), size=tuple(crop_size), mode="bilinear", antialias=True, align_corners=False
    )
    return squashed.permute(0, 2, 3, 1)


def normalize_frames(
    frames_uint8: torch.Tensor, scale: float | None, mean: Sequence[float] | None, std: Sequence[float] | None
) -> torch.Tensor:
    """[T, H, W, 3] uint8 -> [T, 3, H, W] float32, rescaled and normalised (contiguous, in-place arithmetic)."""
    x = frames_uint8.permute(0, 3, 1, 2).contiguous().to(torch.float32)  # reorder as bytes: 4x less to move
    return _rescale_and_normalize_(x, scale, mean, std)


def _rescale_and_normalize_(x: torch.Tensor, scale: float | None, mean, std) -> torch.Tensor:
    """In place on float32 ``[..., 3, H, W]``: ``(x * scale - mean) / std`` in torchvision's operation order."""
    if scale is not None:
        # Divide by 255 rather than multiply by 1/255, as torchvision's ToTensor does, so that the output is
        # bit-identical to the original pipeline (x * (1/255) rounds differently for some values).
        divisor = 1.0 / scale
        if abs(divisor - round(divisor)) < 1e-6:
            x.div_(round(divisor))
        else:
            x.mul_(scale)
    if mean is not None and std is not None:
        x.sub_(torch.as_tensor(mean, dtype=torch.float32, device=x.device).reshape(-1, 1, 1))
        x.div_(torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(-1, 1, 1))
    return x


def normalize_video_pixels(
    pixels_uint8: torch.Tensor,
    rescale_factor: float | None = 1 / 255,
    image_mean: Sequence[float] | None = IMAGENET_DEFAULT_MEAN,
    image_std: Sequence[float] | None = IMAGENET_DEFAULT_STD,
) -> torch.Tensor:
    """uint8 pixels ``[..., 3, H, W]`` (``read_video_pixels(..., pixel_dtype="uint8")``, the pre-training collator's
    ``pixel_dtype="uint8"`` batches) -> float32, rescaled and normalised, on the tensor's own device.

    The same operations in the same order as the float32 path of :func:`read_video_pixels` (convert, divide by 255,
    subtract the mean, divide by the std), so on CPU the result is bit-identical to it. A new tensor is returned.
    """
    if not isinstance(pixels_uint8, torch.Tensor) or pixels_uint8.dtype != torch.uint8:
        kind = pixels_uint8.dtype if isinstance(pixels_uint8, torch.Tensor) else type(pixels_uint8).__name__
        raise ValueError(f"normalize_video_pixels expects a uint8 tensor [..., 3, H, W], got {kind}")
    channels = len(image_mean) if image_mean is not None else 3
    if pixels_uint8.ndim < 3 or pixels_uint8.shape[-3] != channels:
        raise ValueError(
            f"normalize_video_pixels expects pixels [..., {channels}, H, W] (channels first), got shape "
            f"{tuple(pixels_uint8.shape)}"
        )
    return _rescale_and_normalize_(pixels_uint8.to(torch.float32), rescale_factor, image_mean, image_std)


def _transform(
    frames: torch.Tensor,
    mode: str,
    short_side: int,
    crop_size: tuple[int, int],
    generator: torch.Generator | None = None,
    rescale_factor: float | None = 1 / 255,
    image_mean=IMAGENET_DEFAULT_MEAN,
    image_std=IMAGENET_DEFAULT_STD,
) -> torch.Tensor:
    """The three TVTSv2 transforms on uint8 frames [T, H, W, 3] -> float32 [T, 3, crop_h, crop_w]."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    _, height, width, _ = frames.shape
    if mode == "extract":
        return normalize_frames(_squash(frames, crop_size), rescale_factor, image_mean, image_std)
    if mode not in ("eval", "train"):
        raise ValueError(f"unknown transform {mode!r}; expected one of {TRANSFORMS}")
    # Resize and crop in one gather: only the source pixels that land inside the crop are read.
    rows, cols = _crop_indices(height, width, mode, short_side, crop_size, generator)
    cropped = frames.index_select(1, rows).index_select(2, cols)
    return normalize_frames(cropped, rescale_factor, image_mean, image_std)


def preprocess_frames(
    frames: torch.Tensor,
    mode: str = "eval",
    image_size: int = 224,
    generator: torch.Generator | None = None,
    image_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    image_std: Sequence[float] = IMAGENET_DEFAULT_STD,
) -> torch.Tensor:
    """Turn uint8 frames ``[T, H, W, 3]`` into model pixels ``[T, 3, S, S]`` (float32), ``S = image_size``.

    ``mode``: ``"eval"`` (shorter side to ``int(1.2 S)`` with Pillow-exact NEAREST, centre crop), ``"extract"``
    (bilinear squash to ``S x S``) or ``"train"`` (eval resize + one random crop for all frames, drawn from
    ``generator``). Pixels are scaled to [0, 1] and normalised with ``image_mean``/``image_std`` (ImageNet).
    """
    frames = to_uint8_video(frames) if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 else frames
    return _transform(
        frames,
        mode,
        short_side=int(image_size * 1.2),
        crop_size=(image_size, image_size),
        generator=generator,
        image_mean=image_mean,
        image_std=image_std,
    )


# --------------------------------------------------------------------------------------------------------------
# Frame converters: what a read keeps of each decoded frame
# --------------------------------------------------------------------------------------------------------------


def _plane(plane, height: int, width: int) -> np.ndarray:
    """A zero-copy ``[height, width]`` view of one plane of a decoded frame (rows are ``line_size`` apart)."""
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, :width]


_YUV420_FORMATS = ("yuv420p", "yuvj420p")


def _yuv420_pixels_to_rgb(frame, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``frame.to_ndarray(format="rgb24")[rows][:, cols]`` for a 4:2:0 frame, converting only those pixels.

    Each selected luma sample is written into a 2x2 block of a small 4:2:0 frame whose chroma sample for that block
    is the selected pixel's own; FFmpeg's converter takes the chroma of a 4:2:0 pixel from its block (no
    interpolation), so every block converts to exactly the colour the pixel gets in a full-size conversion (tested
    against it on real and generated files). Converting ``2 x crop`` pixels instead of the whole frame bounds memory
    for huge sources and saves work on large ones. (Resizing inside libswscale, even with point sampling, is not
    an option: its sampling positions and colour path differ from Pillow's NEAREST and FFmpeg's full-size
    conversion in almost every pixel.) Only for even frame sizes: FFmpeg converts odd sizes differently.
    """
    height, width = frame.height, frame.width
    chroma_h, chroma_w = (height + 1) // 2, (width + 1) // 2
    luma = _plane(frame.planes[0], height, width)
    rows2, cols2 = np.repeat(rows, 2), np.repeat(cols, 2)
    chroma_rows, chroma_cols = rows // 2, cols // 2
    parts = [luma.take(rows2, axis=0).take(cols2, axis=1).ravel()]
    for index in (1, 2):
        chroma = _plane(frame.planes[index], chroma_h, chroma_w)
        parts.append(chroma.take(chroma_rows, axis=0).take(chroma_cols, axis=1).ravel())
    packed = np.concatenate(parts).reshape(3 * len(rows), 2 * len(cols))
    # The frame's own class (av.VideoFrame) builds the small frame: this file needs no PyAV import.
    small = type(frame).from_ndarray(packed, format=frame.format.name)
    small.colorspace = frame.colorspace
    small.color_range = frame.color_range
    return small.to_ndarray(format="rgb24")[::2, ::2]


class FrameConverter:
    """Turns each sampled decoded frame into the array a read keeps, as soon as it comes out of the decoder.

    This one keeps whole RGB frames (:func:`read_video`). All frames of a read get the size of the first converted
    one (a resolution change mid-stream is rescaled). ``expect(count)`` announces how many frames the read will
    return, so that the output size is checked against ``max_output_bytes`` at the first frame, before the rest
    is decoded.
    """

    def __init__(self, max_output_bytes: int | None = None):
        self.size: tuple[int, int] | None = None  # (width, height) of the first converted frame
        self.max_output_bytes = max_output_bytes
        self.count = 0

    def expect(self, count: int) -> None:
        self.count = count

    def reset(self) -> None:
        """Forget the first frame's size (and what ``setup`` drew from it): the read starts again."""
        self.size = None

    def output_bytes(self, count: int, width: int, height: int) -> int:
        return count * width * height * 3

    def __call__(self, frame) -> np.ndarray:
        if self.size is None:
            self.size = (frame.width, frame.height)
            needed = self.output_bytes(self.count, *self.size)
            if self.max_output_bytes is not None and needed > self.max_output_bytes:
                raise ValueError(
                    f"{self.count} frames of {self.size[0]}x{self.size[1]} need {needed / 2**30:.2f} GiB, more than "
                    f"max_output_bytes={self.max_output_bytes} ({self.max_output_bytes / 2**30:.2f} GiB); ask for "
                    "fewer frames, or raise max_output_bytes (None: no limit)"
                )
            self.setup(*self.size)
        return self.convert(frame)

    def setup(self, width: int, height: int) -> None:
        """Called once, with the size of the first converted frame."""

    def rgb(self, frame) -> np.ndarray:
        width, height = self.size
        if (frame.width, frame.height) != self.size:
            return frame.to_ndarray(format="rgb24", width=width, height=height)
        return frame.to_ndarray(format="rgb24")

    def convert(self, frame) -> np.ndarray:
        return self.rgb(frame)

    def convert_array(self, frames: torch.Tensor) -> torch.Tensor:
        """The same for already-decoded uint8 frames ``[D, H, W, 3]``."""
        return frames


class CropConverter(FrameConverter):
    """Keeps only the resized crop of each frame (``"eval"``/``"train"`` transforms), uint8 ``[crop_h, crop_w, 3]``.

    The crop geometry (and the random crop of ``"train"``) is drawn at the first converted frame, i.e. after the
    frame sampling drew its numbers: the same order of draws as ``preprocess_frames(read_video(...))``.
    """

    def __init__(self, mode: str, short_side: int, crop_size: tuple[int, int], generator, max_output_bytes=None,
                 bytes_per_value: int = 4):
        super().__init__(max_output_bytes)
        self.mode, self.short_side, self.crop_size, self.generator = mode, short_side, crop_size, generator
        self.bytes_per_value = bytes_per_value  # of the returned pixels: 4 (float32) or 1 (uint8)

    def output_bytes(self, count: int, width: int, height: int) -> int:
        return count * 3 * self.crop_size[0] * self.crop_size[1] * self.bytes_per_value

    def setup(self, width: int, height: int) -> None:
        rows, cols = _crop_indices(height, width, self.mode, self.short_side, self.crop_size, self.generator)
        self.rows, self.cols = rows.numpy(), cols.numpy()
        # Frames whose shorter side already has the resized size (prepared files) need no resampling: the crop is
        # then a plain window, cut as a view (two gathers cost ~0.4 ms per 224 crop of a 476x268 frame).
        self.window = _as_slice(self.rows), _as_slice(self.cols)

    def convert(self, frame) -> np.ndarray:
        # Odd sizes are converted differently by FFmpeg at full size (chroma is not taken block by block there).
        even = frame.width % 2 == 0 and frame.height % 2 == 0
        # The partial conversion costs about the same whatever the frame size (~0.9 ms for a 224 crop, 4 pixels
        # per output pixel, plus the gathers), a full conversion grows with the frame (~0.5 ms at 640x480, 1 ms at
        # 720p, 6 ms at 4K on one core): partial from about 720p up, which also bounds memory for huge frames.
        smaller = 12 * len(self.rows) * len(self.cols) < frame.width * frame.height
        same_size = (frame.width, frame.height) == self.size
        if smaller and even and same_size and frame.format.name in _YUV420_FORMATS:
            return _yuv420_pixels_to_rgb(frame, self.rows, self.cols)
        rows, cols = self.window
        if rows is not None and cols is not None and same_size:
            return self.rgb(frame)[rows, cols]
        return self.rgb(frame).take(self.rows, axis=0).take(self.cols, axis=1)

    def convert_array(self, frames: torch.Tensor) -> torch.Tensor:
        _, height, width, _ = frames.shape
        self.size = (width, height)
        self.setup(width, height)
        return frames.index_select(1, torch.from_numpy(self.rows)).index_select(2, torch.from_numpy(self.cols))


def _as_slice(indices: np.ndarray) -> slice | None:
    """``slice(a, b)`` when ``indices`` is exactly ``a, a + 1, ..., b - 1``, else None."""
    if len(indices) and indices[-1] - indices[0] == len(indices) - 1 and np.all(np.diff(indices) == 1):
        return slice(int(indices[0]), int(indices[-1]) + 1)
    return None


class SquashConverter(FrameConverter):
    """Keeps each frame squashed to the crop size (``"extract"`` transform), uint8 ``[crop_h, crop_w, 3]``."""

    def __init__(self, crop_size: tuple[int, int], max_output_bytes=None, bytes_per_value: int = 4):
        super().__init__(max_output_bytes)
        self.crop_size = crop_size
        self.bytes_per_value = bytes_per_value

    def output_bytes(self, count: int, width: int, height: int) -> int:
        return count * 3 * self.crop_size[0] * self.crop_size[1] * self.bytes_per_value

    def convert(self, frame) -> np.ndarray:
        return self.convert_array(torch.from_numpy(self.rgb(frame))[None])[0].numpy()

    def convert_array(self, frames: torch.Tensor) -> torch.Tensor:
        return _squash(frames, self.crop_size)
