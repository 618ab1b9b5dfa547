"""TVTSv2 processor: the CLIP tokenizer (:mod:`tokenization_tvtsv2`) + :class:`TVTSv2VideoProcessor`.

This file is a flat Hub file: project code is imported only from its siblings ``tokenization_tvtsv2``,
``video_processing_tvtsv2`` and ``video_decoding_tvtsv2``.
"""

import os
from typing import Any

import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessingKwargs, ProcessorMixin, Unpack
from transformers.video_processing_utils import VideoProcessorMixin

from .tokenization_tvtsv2 import CONTEXT_LENGTH, build_clip_tokenizer, clean_text
from .video_decoding_tvtsv2 import VIDEO_EXTENSIONS
from .video_processing_tvtsv2 import TVTSv2VideoProcessor, TVTSv2VideoProcessorKwargs


__all__ = ["TVTSv2Processor", "TVTSv2ProcessorKwargs"]

_LOAD_TIME_KEYS = ("is_local", "local_files_only")
_ABSENT = object()


class TVTSv2ProcessorKwargs(ProcessingKwargs, total=False):
    videos_kwargs: TVTSv2VideoProcessorKwargs


def _text_layout(text: Any) -> tuple[list[str], tuple[int, int] | None]:
    """Flatten ``str | list[str] | list[list[str]]``; returns the strings and ``(B, K)`` for the nested form."""
    if isinstance(text, str):
        return [text], None
    if not isinstance(text, (list, tuple)) or len(text) == 0:
        raise ValueError("text must be a string, a non-empty list of strings, or a list of lists of strings")
    if all(isinstance(t, str) for t in text):
        return list(text), None
    if not all(isinstance(t, (list, tuple)) and all(isinstance(s, str) for s in t) for t in text):
        raise ValueError("text must be a string, a list of strings, or a list of lists of strings (not a mix)")
    counts = sorted({len(t) for t in text})
    if len(counts) != 1:
        raise ValueError(
            f"every video needs the same number of transcripts K to form input_ids [B, K, {CONTEXT_LENGTH}]; "
            f"got K in {counts}. Pad with empty strings or group videos by K."
        )
    if counts[0] == 0:
        raise ValueError("each video needs at least one transcript (an empty string is allowed)")
    return [s for t in text for s in t], (len(text), counts[0])


def _context_length(tokenizer) -> int:
    """The tokenizer's own length limit; CLIP's 77 when it has none (transformers' "very large" sentinel)."""
    limit = getattr(tokenizer, "model_max_length", None)
    if not isinstance(limit, int) or limit <= 0 or limit > 1_000_000:
        return CONTEXT_LENGTH
    return limit


def _looks_like_video(value: Any) -> bool:
    """A value that is a video, not a caption: bytes, arrays, path objects, files, or a video file name."""
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped or any(c.isspace() for c in stripped):
            return False  # captions have words; file names passed by mistake rarely contain spaces
        return stripped.lower().endswith(VIDEO_EXTENSIONS) or os.path.isfile(stripped)
    if isinstance(value, dict):
        return "bytes" in value or "path" in value  # a 🤗 Datasets Video(decode=False) cell
    return isinstance(value, (bytes, bytearray, memoryview, os.PathLike, torch.Tensor)) or hasattr(value, "read") or (
        hasattr(value, "__array_interface__") or hasattr(value, "shape")
    )


def _reject_video_as_text(text: Any) -> None:
    """``processor("clip.mp4")`` would tokenize the file name: the first positional argument is ``text``."""
    if text is None:
        return
    items = text if isinstance(text, (list, tuple)) else [text]
    nested = [s for item in items for s in (item if isinstance(item, (list, tuple)) else [item])]
    if isinstance(text, os.PathLike) or any(_looks_like_video(item) for item in nested):
        example = next((item for item in nested if _looks_like_video(item)), text)
        shown = repr(example) if isinstance(example, (str, os.PathLike)) else type(example).__name__
        raise ValueError(
            f"text= got a video ({shown}); the first positional argument of TVTSv2Processor is text. "
            "Pass videos with the keyword: processor(videos=...) or processor(text=..., videos=...)."
        )


class TVTSv2Processor(ProcessorMixin):
    r"""TVTSv2 processor: CLIP tokenizer for transcripts/captions + :class:`TVTSv2VideoProcessor` for videos.

    ``processor(text=..., videos=..., **kwargs)`` returns a ``BatchFeature`` with

    * ``input_ids``, ``attention_mask``: ``[N, 77]`` for ``text`` = a string (N = 1) or a list of N strings
      (usually one per video; the count is not tied to the videos, so N captions can be scored against
      B videos), or ``[B, K, 77]`` for a list of B lists of K strings (K transcripts per video, the layout the
      model takes; every video must have the same K and B must equal the number of videos);
    * ``pixel_values_videos``: ``[B, T, 3, S, S]`` (see :class:`TVTSv2VideoProcessor`), plus ``video_metadata``
      with ``return_metadata=True``.

    Text is padded to and truncated at the tokenizer's ``model_max_length`` (77 for CLIP; end token kept last);
    ``return_tensors`` defaults to ``"pt"``. These defaults are the processor's ``text_kwargs`` (what
    ``processor._merge_kwargs`` returns); in transformers' order a call's kwargs win over the tokenizer's init
    kwargs (``max_length=``, ``padding=``, ...), which win over these defaults. ``text`` is the first positional
    argument: a video passed there (a video file name or path, bytes, an array) raises a ``ValueError`` instead of
    being tokenized; pass videos as ``videos=``.
    Video options (``num_frames``, ``sampling``, ``start``, ``end``, ``fps``, ``transform``, ``generator``, ...)
    go straight in the call. Empty transcripts are allowed (they give start + end tokens).

    ``TVTSv2Processor()`` (or :meth:`from_defaults`) builds the default processor offline.
    """

    # The defaults live where transformers' `_merge_kwargs` looks for them (processor attributes, its recommended
    # place), so `processor._merge_kwargs(...)["text_kwargs"]` is what a call uses, and the documented order holds:
    # call kwargs > tokenizer init kwargs (e.g. `max_length=`) > these. `text_kwargs` is a property because its
    # `max_length` is the tokenizer's `model_max_length` (77 for CLIP): a tokenizer with another context length
    # is honoured.
    videos_kwargs = {"return_tensors": "pt"}
    valid_processor_kwargs = TVTSv2ProcessorKwargs

    def __init__(self, video_processor=None, tokenizer=None, **kwargs):
        if video_processor is None:
            video_processor = TVTSv2VideoProcessor()
        if tokenizer is None:
            tokenizer = build_clip_tokenizer()
        super().__init__(video_processor, tokenizer, **kwargs)

    @property
    def text_kwargs(self) -> dict[str, Any]:
        """Default text kwargs: pad to and truncate at the tokenizer's context length, PyTorch tensors."""
        max_length = _context_length(self.tokenizer) if hasattr(self, "tokenizer") else CONTEXT_LENGTH
        return {"padding": "max_length", "max_length": max_length, "truncation": True, "return_tensors": "pt"}

    @classmethod
    def from_defaults(cls, image_size: int = 224, num_frames: int = 12, **video_kwargs: Any) -> "TVTSv2Processor":
        """The original TVTSv2 preprocessing for a model of this image size, built offline (no download)."""
        video_processor = TVTSv2VideoProcessor(image_size=image_size, num_frames=num_frames, **video_kwargs)
        return cls(video_processor=video_processor, tokenizer=build_clip_tokenizer())

    def check_argument_for_proper_class(self, argument_name, argument):
        # Without torchvision, transformers cannot resolve the video-processor base class by name (it looks in a
        # dummy mapping and raises AttributeError), so check that argument against the mixin directly.
        if argument_name == "video_processor":
            if not isinstance(argument, VideoProcessorMixin):
                kind = type(argument).__name__
                raise TypeError(f"Received a {kind} for video_processor, expected a video processor")
            return VideoProcessorMixin
        return super().check_argument_for_proper_class(argument_name, argument)

    def __call__(self, text=None, videos=None, **kwargs: Unpack[TVTSv2ProcessorKwargs]) -> BatchFeature:
        if text is None and videos is None:
            raise ValueError("give text=, videos= or both")
        _reject_video_as_text(text)
        output_kwargs = self._merge_kwargs(
            TVTSv2ProcessorKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs
        )
        text_kwargs = output_kwargs["text_kwargs"]
        data: dict[str, Any] = {}
        layout = None
        if text is not None:
            strings, layout = _text_layout(text)
            if not getattr(self.tokenizer, "cleans_text", False):
                # e.g. a plain CLIPTokenizer from a folder saved before TVTSv2Tokenizer existed
                strings = [clean_text(string) for string in strings]
            encoding = self.tokenizer(strings, **text_kwargs)
            for key in ("input_ids", "attention_mask"):
                if key not in encoding:
                    continue
                value = encoding[key]
                if layout is not None:
                    if isinstance(value, torch.Tensor):
                        value = value.reshape(*layout, value.shape[-1])
                    else:  # lists (return_tensors=None)
                        k = layout[1]
                        value = [list(value[b * k : (b + 1) * k]) for b in range(layout[0])]
                data[key] = value
        if videos is not None:
            video_outputs = self.video_processor(videos, **output_kwargs["videos_kwargs"])
            data.update(video_outputs)
            num_videos = len(video_outputs["pixel_values_videos"])
            if layout is not None and layout[0] != num_videos:
                raise ValueError(f"text has transcripts for {layout[0]} videos but {num_videos} videos were given")
        return BatchFeature(data=data)

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        # A fast tokenizer remembers the truncation/padding of its last call and would write it into
        # tokenizer.json, where it comes back as init kwargs (e.g. max_length) on reload. Save a clean state.
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            backend.no_truncation()
            backend.no_padding()
        # Loading from a folder adds where-it-came-from flags to the tokenizer's init kwargs; they are not settings,
        # and writing them would make save -> load -> save differ. Left out of the files, kept in memory.
        init_kwargs = getattr(self.tokenizer, "init_kwargs", {})
        provenance = {key: init_kwargs.pop(key) for key in _LOAD_TIME_KEYS if key in init_kwargs}
        # A Hub export (`register_for_auto_class`) makes transformers set `auto_map` on the objects it saves; put
        # back what they had so that the export leaves the in-memory processor as it was.
        owners = [self, self.video_processor]
        auto_maps = [owner.__dict__.get("auto_map", _ABSENT) for owner in owners]
        try:
            return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        finally:
            init_kwargs.update(provenance)
            for owner, auto_map in zip(owners, auto_maps):
                if auto_map is _ABSENT:
                    owner.__dict__.pop("auto_map", None)
                else:
                    owner.auto_map = auto_map

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values_videos"]
