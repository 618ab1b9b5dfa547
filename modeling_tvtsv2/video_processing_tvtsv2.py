"""The transformers video processor of TVTSv2: :class:`TVTSv2VideoProcessor` (decode, sample, transform; torch + PyAV).

transformers' stock ``BaseVideoProcessor`` needs torchvision, which cannot be installed beside the CPU torch
build this project targets, so :class:`TVTSv2VideoProcessor` is built directly on ``VideoProcessorMixin``. The work
is done by its sibling flat Hub files, which this file imports relatively (it imports no project module):

* :mod:`video_decoding_tvtsv2`: PyAV: opening, probing, indexing, seeking and decoding video files;
* :mod:`video_reading_tvtsv2`: :func:`read_video` / :func:`read_video_pixels`: frame sampling (strategies, short
  videos), read limits, metadata;
* :mod:`video_transforms_tvtsv2`: the ``"eval"`` / ``"extract"`` / ``"train"`` transforms (Pillow-exact) and the
  per-frame converters.

The processor routes frame sampling through its :meth:`~TVTSv2VideoProcessor.sample_frames` hook and reads each
video with :func:`read_video_pixels`, so each decoded frame is reduced to its crop as it comes out.
"""

import math
import os
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from huggingface_hub.dataclasses import validate_typed_dict
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, validate_kwargs
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.video_processing_utils import VideoProcessorMixin
from transformers.video_utils import VideoMetadata

from .video_reading_tvtsv2 import (
    SAMPLING_STRATEGIES,
    TVTSv2VideoMetadata,
    read_video_pixels,
    sample_frame_indices,
    select_frame_positions,
)
from .video_transforms_tvtsv2 import TRANSFORMS, is_decoded_video, is_frame


__all__ = [
    "SHORT_VIDEO_POLICIES",
    "TVTSv2VideoProcessor",
    "TVTSv2VideoProcessorKwargs",
    "TVTSv2VideosKwargs",
]


class TVTSv2VideoProcessorKwargs(VideosKwargs, total=False):
    """``VideosKwargs`` plus the TVTSv2 options (all optional at call time; defaults come from the processor).

    sampling: ``"uniform"`` | ``"linspace"`` | ``"random"``.
    transform: ``"eval"`` | ``"extract"`` | ``"train"``.
    start, end: time window in seconds, one value for the batch or a list with one value (or None) per video.
    generator: ``torch.Generator`` for random sampling and random crops.
    max_decode_frames: cap on decoded frames per video.
    short_videos: ``"repeat"`` (default) | ``"pad"``: what a window with fewer than ``num_frames`` frames gives.
    """

    sampling: str | None
    transform: str | None
    start: float | int | list[float | int | None] | None
    end: float | int | list[float | int | None] | None
    generator: Any
    max_decode_frames: int | None
    short_videos: str | None


TVTSv2VideosKwargs = TVTSv2VideoProcessorKwargs
"""Former name of :class:`TVTSv2VideoProcessorKwargs` (kept as an alias)."""

SHORT_VIDEO_POLICIES = ("repeat", "pad")
# Interpolation each transform uses, as PIL resampling codes (NEAREST = 0, BILINEAR = 2): `resample=` may name it.
_TRANSFORM_RESAMPLE = {"eval": 0, "train": 0, "extract": 2}


def _per_video(value: Any, batch_size: int, name: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != batch_size:
            raise ValueError(f"{name} has {len(value)} values for a batch of {batch_size} videos")
        return list(value)
    return [value] * batch_size


def _per_video_metadata(value: Any, batch_size: int) -> list[Any]:
    """``video_metadata`` in any layout transformers accepts: one dict/``VideoMetadata`` for the batch, a list with
    one per video, or the nested ``[[...]]`` form (one inner list per video, holding that video's metadata)."""
    items = _per_video(value, batch_size, "video_metadata")
    flat = []
    for item in items:
        if isinstance(item, (list, tuple)):
            if len(item) != 1:
                raise ValueError(f"video_metadata: each video takes one metadata entry, got a list of {len(item)}")
            item = item[0]
        if item is not None and not isinstance(item, (dict, VideoMetadata)):
            raise ValueError(f"video_metadata entries must be dicts or VideoMetadata, got {type(item).__name__}")
        flat.append(item)
    return flat


def _frame_rate(metadata: Any) -> float | None:
    rate = metadata.get("fps") if metadata is not None else None
    return float(rate) if rate else None


def _channels_last(video: Any, input_data_format: Any) -> Any:
    """A decoded video in ``input_data_format`` ("channels_first" / "channels_last") as channels-last frames."""
    fmt = getattr(input_data_format, "value", input_data_format)
    if fmt not in ("channels_first", "channels_last"):
        raise ValueError(f"input_data_format must be 'channels_first' or 'channels_last', got {input_data_format!r}")
    if fmt == "channels_last" or not is_decoded_video(video):
        return video  # files are decoded to channels-last frames whatever the setting
    if isinstance(video, (list, tuple)):
        return [_channels_last(frame[None], fmt)[0] for frame in video]
    tensor = video if isinstance(video, torch.Tensor) else torch.as_tensor(np.asarray(video))
    return tensor.movedim(-3, -1)


def _as_video_batch(videos: Any) -> list[Any]:
    """One video or a batch of videos, as a list of videos."""
    if isinstance(videos, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(videos, "read"):
        return [videos]
    if isinstance(videos, (torch.Tensor, np.ndarray)):
        if videos.ndim == 5:
            return list(videos)
        if videos.ndim == 4:
            return [videos]
        raise ValueError(f"videos must be [T, H, W, C] or [B, T, H, W, C], got shape {list(videos.shape)}")
    if isinstance(videos, (list, tuple)):
        if len(videos) == 0:
            raise ValueError("no videos given")
        if all(is_frame(v) and not _is_decoded_video_like(v) for v in videos):
            return [videos]  # one video given as a list of frames
        return list(videos)
    raise TypeError(f"cannot read videos from {type(videos).__name__}")


def _check_fixed_options(kwargs: dict[str, Any], transform: str) -> None:
    """Options transformers accepts that this processor cannot change: accepted when they agree, else an error."""
    if kwargs.get("do_resize") is False or kwargs.get("do_center_crop") is False or kwargs.get("do_pad"):
        raise ValueError("resizing and cropping are set by transform= ('eval', 'extract', 'train')")
    if kwargs.get("do_convert_rgb") is False:
        raise ValueError("do_convert_rgb=False is not supported: frames are always converted to RGB")
    data_format = getattr(kwargs.get("data_format"), "value", kwargs.get("data_format"))
    if data_format not in (None, "channels_first"):
        raise ValueError(f"data_format must be 'channels_first' (the model's layout), got {data_format!r}")
    resample = kwargs.get("resample")
    if resample is not None and int(resample) != _TRANSFORM_RESAMPLE[transform]:
        raise ValueError(
            f"resample={resample!r} is not what transform={transform!r} uses; the interpolation is set by "
            "transform= ('eval'/'train': NEAREST, 'extract': BILINEAR)"
        )


class TVTSv2VideoProcessor(VideoProcessorMixin):
    r"""TVTSv2 video processor: decode (PyAV), sample frames and transform them, torch only.

    ``processor(videos, num_frames=12, sampling="uniform", start=None, end=None, transform="eval",
    return_tensors="pt", return_metadata=False)`` returns a ``BatchFeature`` with ``pixel_values_videos``
    ``[B, T, 3, S, S]``. ``videos`` is one video or a list of videos; a video is a path, ``bytes``, a binary file
    object, a ``[T, H, W, C]`` uint8 array/tensor or a list of ``[H, W, C]`` frames, and videos of different
    lengths and sizes can share a batch. With ``return_tensors=None`` (the transformers default)
    ``pixel_values_videos`` is a list of ``[T, 3, S, S]`` tensors. With ``return_metadata=True`` the output also
    holds ``video_metadata``, one :class:`TVTSv2VideoMetadata` per video.

    Frame sampling goes through :meth:`sample_frames` (override it in a subclass to change the sampling).
    ``num_frames`` and ``fps`` are alternatives, as in transformers: ``fps=`` in a call samples every ``1/fps`` s
    over the clip or window (the processor's default ``num_frames`` is not applied), ``num_frames=`` in a call
    replaces a saved ``fps``; both in one call ask for ``num_frames`` frames at that rate from the window start.

    Short videos (``short_videos=``, fewer than ``num_frames`` frames in the clip or window):

    * ``"repeat"`` (default): frames are repeated in temporal order so every video gives ``T`` real frames (see
      :mod:`video_reading_tvtsv2`); the model never sees blank frames.
    * ``"pad"``: the original TVTSv2 data loaders: every frame once, in order (their ``min(T, n)`` sampling), then
      zero frames *after* normalisation (the mean colour) up to ``T``. Use it to reproduce the original numbers
      on datasets with very short clips.

    Other ``VideosKwargs``: ``video_metadata`` (a dict/``VideoMetadata``, a list with one per video, or the nested
    ``[[...]]`` form) gives the frame rate of decoded-array inputs; ``device`` places the output tensors there
    (the transforms run on CPU); ``input_data_format`` says where the channels of decoded-array inputs are
    (otherwise they are detected); ``data_format`` can only be ``"channels_first"``; ``resample`` can only name
    the interpolation the transform uses (NEAREST for eval/train, BILINEAR for extract) since the transform
    decides it; ``size`` must be ``{"shortest_edge": N}`` (or an int); ``do_resize``/``do_center_crop`` cannot be
    switched off and ``do_convert_rgb`` is always on. Other values are a ``ValueError`` naming the argument.

    Saved attributes: ``size["shortest_edge"]`` (the eval/train resize, ``int(1.2 S)``), ``crop_size`` (``S``),
    ``num_frames``, ``fps``, ``sampling``, ``transform``, ``short_videos``, rescale and normalisation settings.
    ``TVTSv2VideoProcessor(image_size=S)`` derives ``size`` and ``crop_size`` from the model's image size.
    """

    valid_kwargs = TVTSv2VideoProcessorKwargs
    model_input_names = ["pixel_values_videos"]

    size = {"shortest_edge": 268}
    crop_size = {"height": 224, "width": 224}
    default_to_square = False
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    do_sample_frames = True
    num_frames = 12
    sampling = "uniform"
    transform = "eval"
    short_videos = "repeat"
    return_metadata = False

    def __init__(self, image_size: int | None = None, **kwargs: Unpack[TVTSv2VideoProcessorKwargs]) -> None:
        if image_size is not None:
            kwargs.setdefault("size", {"shortest_edge": int(image_size * 1.2)})
            kwargs.setdefault("crop_size", {"height": image_size, "width": image_size})
        if kwargs.get("fps") is not None and "num_frames" not in kwargs:
            kwargs["num_frames"] = None  # fps and num_frames are alternatives: fps replaces the default count
        super().__init__(**kwargs)
        # VideoProcessorMixin does not resolve attributes itself (the torchvision backend does): set every valid
        # kwarg from kwargs or the class default so that save_pretrained writes them all.
        self._set_attributes(**kwargs)

    def sample_frames(
        self,
        metadata: VideoMetadata,
        num_frames: int | None = None,
        fps: float | None = None,
        sampling: str | None = None,
        generator: torch.Generator | None = None,
        **kwargs,
    ) -> np.ndarray:
        """Indices of the frames to take from a video (or window) described by ``metadata`` (transformers hook).

        ``preprocess`` calls it for every video, with a :class:`TVTSv2VideoMetadata` of the frames in the clip or
        ``start``/``end`` window: ``total_num_frames``, ``fps`` (measured), ``frame_timestamps`` (each frame's
        start time in seconds) and ``window`` (the ``(start, end)`` seconds sampled). A plain ``VideoMetadata``
        (``total_num_frames``, ``fps``) works too. The indices are positions ``0 .. total_num_frames - 1``.

        ``num_frames`` and ``fps`` are alternatives: with neither, the processor's own setting is used; with only
        ``fps``, every ``1/fps`` s of the range (the frame on screen at each time); with both, ``num_frames``
        steps at ``fps`` (past the end the last frame repeats).
        """
        n = int(metadata.total_num_frames)
        if num_frames is None and fps is None:
            num_frames, fps = self.num_frames, self.fps
        sampling = sampling or self.sampling
        if fps is None:
            if num_frames is None:
                return np.arange(n)
            return np.array(sample_frame_indices(n, num_frames, sampling, generator))
        times = getattr(metadata, "frame_timestamps", None)
        window = getattr(metadata, "window", None)
        if times is not None and window is not None and len(times) == n:
            t0, t_end = window
        else:
            if not metadata.fps:
                raise ValueError("fps sampling needs the video's frame rate (metadata.fps)")
            times = [i / metadata.fps for i in range(n)]
            t0, t_end = 0.0, n / metadata.fps
        return np.array(select_frame_positions(times, num_frames, sampling, fps, generator, t0, t_end))

    def _sample_window(
        self,
        times: Sequence[float],
        t0: float,
        t_end: float,
        *,
        num_frames: int | None,
        fps: float | None,
        sampling: str,
        generator: torch.Generator | None,
        short_videos: str,
    ) -> list[int]:
        """The sampler ``read_video`` calls with the frame times of the range: goes through :meth:`sample_frames`."""
        n = len(times)
        measured = (n - 1) / (times[-1] - times[0]) if n > 1 and times[-1] > times[0] else None
        metadata = TVTSv2VideoMetadata(
            total_num_frames=n,
            fps=measured,
            duration=t_end - t0 if math.isfinite(t_end) else None,
            frame_timestamps=list(times),
            window=(t0, t_end),
        )
        if short_videos == "pad" and fps is None and num_frames is not None and n < num_frames:
            num_frames = n  # the original's min(T, n): every frame once; zero frames are appended later
        indices = self.sample_frames(metadata, num_frames=num_frames, fps=fps, sampling=sampling, generator=generator)
        positions = [int(i) for i in np.asarray(indices).reshape(-1)]
        if not positions or any(p < 0 or p >= n for p in positions):
            raise ValueError(f"{type(self).__name__}.sample_frames returned indices outside 0..{n - 1}: {positions}")
        return positions

    def _resolve(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Call kwargs over the processor's defaults, with ``fps``/``num_frames`` as alternatives."""
        call_fps, call_count = kwargs.get("fps") is not None, kwargs.get("num_frames") is not None
        if call_fps and not call_count:
            kwargs["num_frames"] = None
        elif call_count and not call_fps:
            kwargs["fps"] = None
        for name in self.valid_kwargs.__annotations__:
            kwargs.setdefault(name, getattr(self, name, None))
        kwargs = self._standardize_kwargs(**kwargs)
        size = kwargs["size"]
        if size is None or size.shortest_edge is None or size.height is not None or size.width is not None:
            raise ValueError(
                f"size must be {{'shortest_edge': N}} (or an int N): the eval/train transforms resize the shorter "
                f"side to N and crop crop_size; got size={dict(size) if size is not None else None}"
            )
        if kwargs["crop_size"] is None or kwargs["crop_size"].height is None:
            raise ValueError("crop_size must be {'height': S, 'width': S} (or an int S)")
        kwargs["transform"] = kwargs["transform"] or "eval"
        if kwargs["transform"] not in TRANSFORMS:
            raise ValueError(f"unknown transform {kwargs['transform']!r}; expected one of {TRANSFORMS}")
        kwargs["sampling"] = kwargs["sampling"] or "uniform"
        if kwargs["sampling"] not in SAMPLING_STRATEGIES:
            raise ValueError(f"unknown sampling {kwargs['sampling']!r}; expected one of {SAMPLING_STRATEGIES}")
        kwargs["short_videos"] = kwargs["short_videos"] or "repeat"
        if kwargs["short_videos"] not in SHORT_VIDEO_POLICIES:
            raise ValueError(f"short_videos must be one of {SHORT_VIDEO_POLICIES}, got {kwargs['short_videos']!r}")
        _check_fixed_options(kwargs, kwargs["transform"])
        return kwargs

    def preprocess(self, videos: Any, **kwargs: Unpack[TVTSv2VideoProcessorKwargs]) -> BatchFeature:
        validate_kwargs(
            captured_kwargs=kwargs.keys(),
            valid_processor_keys=list(self.valid_kwargs.__annotations__.keys()) + ["return_tensors"],
        )
        validate_typed_dict(self.valid_kwargs, kwargs)
        kwargs = self._resolve(dict(kwargs))
        size, crop_size, transform = kwargs["size"], kwargs["crop_size"], kwargs["transform"]
        generator = kwargs["generator"]
        batch = _as_video_batch(videos)
        starts = _per_video(kwargs["start"], len(batch), "start")
        ends = _per_video(kwargs["end"], len(batch), "end")
        metadata_in = _per_video_metadata(kwargs.get("video_metadata"), len(batch))
        scale = kwargs["rescale_factor"] if kwargs["do_rescale"] else None
        mean, std = (kwargs["image_mean"], kwargs["image_std"]) if kwargs["do_normalize"] else (None, None)
        if kwargs["do_sample_frames"] is False:
            num_frames, sampling, pad_to = None, kwargs["sampling"], None  # every frame of the clip/window
        else:
            num_frames = kwargs["num_frames"]
            sampling = partial(
                self._sample_window,
                num_frames=num_frames,
                fps=kwargs["fps"],
                sampling=kwargs["sampling"],
                generator=generator,
                short_videos=kwargs["short_videos"],
            )
            pad_to = num_frames if kwargs["short_videos"] == "pad" and kwargs["fps"] is None else None

        pixel_values, metadata = [], []
        for video, start, end, meta in zip(batch, starts, ends, metadata_in):
            decoded = is_decoded_video(video)
            if kwargs["input_data_format"] is not None:
                video = _channels_last(video, kwargs["input_data_format"])
            # Each decoded frame is reduced to its crop as it comes out (same pixels and random draws as
            # read_video + the transform), so memory stays bounded by the output whatever the source size.
            pixels, info = read_video_pixels(
                video,
                num_frames=num_frames,
                sampling=sampling,
                start=start,
                end=end,
                fps=kwargs["fps"],
                generator=generator,
                max_decode_frames=kwargs["max_decode_frames"],
                transform=transform,
                short_side=size.shortest_edge,
                crop_size=(crop_size.height, crop_size.width),
                rescale_factor=scale,
                image_mean=mean,
                image_std=std,
                source_fps=_frame_rate(meta) if decoded else None,
            )
            if pad_to is not None and pixels.shape[0] < pad_to:
                # Zeros after normalisation (the mean colour), as the original data loaders pad short clips.
                pixels = torch.cat([pixels, pixels.new_zeros(pad_to - pixels.shape[0], *pixels.shape[1:])])
            pixel_values.append(pixels)
            metadata.append(info)
        return_tensors = kwargs.get("return_tensors")
        if return_tensors is not None and len({p.shape for p in pixel_values}) > 1:
            raise ValueError(
                "videos gave different numbers of frames and cannot be stacked into one tensor; pass num_frames= "
                "(or return_tensors=None for a list)"
            )
        if kwargs["device"] is not None:
            pixel_values = [p.to(kwargs["device"]) for p in pixel_values]
        data = {"pixel_values_videos": torch.stack(pixel_values) if return_tensors else pixel_values}
        output = BatchFeature(data=data, tensor_type=return_tensors)
        if kwargs["return_metadata"]:
            output["video_metadata"] = metadata
        return output


def _is_decoded_video_like(x: Any) -> bool:
    """A 4-D array/tensor (a whole video), as opposed to a single 3-D frame."""
    ndim = getattr(x, "ndim", None)
    if ndim is None and hasattr(x, "__array_interface__"):
        ndim = len(x.__array_interface__["shape"])
    return ndim == 4
