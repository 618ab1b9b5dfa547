"""A small, deterministic, *learnable* demo corpus of real video files with timed transcripts.

Each transcript clip shows four scenes in a row. A scene is one coloured shape doing one thing ("a red square
moves left", "a blue circle grows", ...); the four scenes of a clip have four different colours. The clip comes
with a ``.srt`` transcript whose four cues describe the scenes, so that:

* **transcript sorting** is learnable: which sentence goes with which part of the video is visible in the frames;
* **retrieval** is learnable: the clips differ in their sequence of (colour, shape, action).

The sentences carry no ordering words ("first", "then"): the order can only be recovered from the video.

Timing is aligned with the pre-training sampler (:func:`modeling_tvtsv2.data.transcript_windows.sample_transcript_span`) under its
default arguments: a clip of ``clip_seconds`` (15 s) is shorter than the shortest span plus the end margin
(15 + 1 s), so the sampler uses the whole clip, ``[0, 14]`` s, and cuts it into four 2.75 s windows separated by
1 s gaps. Scene ``i`` fills window ``i`` (scene changes happen in the middle of the gaps) and cue ``i`` lies inside
window ``i``. The caption variant (WebVid style) has one single-scene clip per caption.

Everything is generated from ``seed`` (NumPy), encoded with PyAV (MPEG-4 Part 2, small frames, low fps: a clip
is a few kB), then turned into 🤗 Datasets with the regular corpus builders of :mod:`modeling_tvtsv2.data.corpus_builders` (the
same code users run on their own videos), videos embedded. A manifest of the parameters makes later calls with
the same parameters reuse the cache.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from transformers.utils import logging

logger = logging.get_logger(__name__)

__all__ = [
    "ACTIONS",
    "COLOURS",
    "SHAPES",
    "DemoCorpus",
    "DemoScene",
    "build_demo_corpus",
    "demo_scene_vocabulary",
    "render_scene_frames",
]

#: Bump when the generated content changes, to invalidate caches.
DEMO_CORPUS_VERSION = 2

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
    "purple": (170, 40, 230),
    "white": (240, 240, 240),
    "orange": (250, 140, 20),
    "cyan": (40, 220, 230),
}
SHAPES: tuple[str, ...] = ("square", "circle", "triangle")
ACTIONS: tuple[str, ...] = ("moves left", "moves right", "moves up", "moves down", "grows", "shrinks")


@dataclass(frozen=True)
class DemoScene:
    colour: str
    shape: str
    action: str

    @property
    def sentence(self) -> str:
        article = "an" if self.colour[0] in "aeiou" else "a"
        return f"{article} {self.colour} {self.shape} {self.action}"


@dataclass(frozen=True)
class DemoCorpus:
    """Paths of a built demo corpus. ``transcript`` and ``caption`` are ``DatasetDict`` folders (``train`` and
    ``validation``) loadable with :func:`modeling_tvtsv2.data.schema.load_corpus`."""

    root: Path
    transcript: Path
    caption: Path


# --------------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------------


def _shape_mask(shape: str, size: int, cx: float, cy: float, half: float) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if shape == "square":
        return (np.abs(xs - cx) <= half) & (np.abs(ys - cy) <= half)
    if shape == "circle":
        return (xs - cx) ** 2 + (ys - cy) ** 2 <= half**2
    if shape == "triangle":  # apex up
        inside_y = (ys >= cy - half) & (ys <= cy + half)
        width = (ys - (cy - half)) / 2.0  # half-width grows from 0 at the apex to `half` at the base
        return inside_y & (np.abs(xs - cx) <= width)
    raise ValueError(f"unknown shape {shape!r}")


def render_scene_frames(
    scene: DemoScene, progress: np.ndarray, size: int, background: tuple[int, int, int]
) -> np.ndarray:
    """Frames ``uint8 [len(progress), size, size, 3]`` of a scene at the given progress values in ``[0, 1]``."""
    frames = np.empty((len(progress), size, size, 3), dtype=np.uint8)
    frames[:] = np.asarray(background, dtype=np.uint8)
    colour = np.asarray(COLOURS[scene.colour], dtype=np.uint8)
    # Large shapes (about 40 % of the frame): with 4 x 4 patches and half of them masked, a small shape would often
    # vanish from a sample. Centres stay in the middle 40 % so that training crops (~84 % of the frame) keep it.
    low, high, centre = 0.3 * size, 0.7 * size, 0.5 * size
    base_half = 0.2 * size
    for k, t in enumerate(np.clip(progress, 0.0, 1.0)):
        cx = cy = centre
        half = base_half
        if scene.action == "moves left":
            cx = high + (low - high) * t
        elif scene.action == "moves right":
            cx = low + (high - low) * t
        elif scene.action == "moves up":
            cy = high + (low - high) * t
        elif scene.action == "moves down":
            cy = low + (high - low) * t
        elif scene.action == "grows":
            half = base_half * (0.7 + 1.0 * t)
        elif scene.action == "shrinks":
            half = base_half * (1.7 - 1.0 * t)
        frames[k][_shape_mask(scene.shape, size, cx, cy, half)] = colour
    return frames


def _encode(path: Path, frames: np.ndarray, fps: int) -> None:
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps, 1))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = fps  # a keyframe every second: cheap seeks
        stream.options = {"qscale": "2"}
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _srt_time(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def _windows(duration: float, k: int, gap: float, end_margin: float) -> list[tuple[float, float]]:
    # The sampler's layout for a video shorter than the shortest span (see the module docstring).
    end = duration - end_margin
    length = (end - gap * (k - 1)) / k
    return [(i * (length + gap), i * (length + gap) + length) for i in range(k)]


def _draw_scenes(rng: np.random.Generator, count: int) -> list[DemoScene]:
    colours = rng.choice(len(COLOURS), size=count, replace=False)
    names = list(COLOURS)
    return [
        DemoScene(names[c], SHAPES[int(rng.integers(len(SHAPES)))], ACTIONS[int(rng.integers(len(ACTIONS)))])
        for c in colours
    ]


def _background(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(10, 60, size=3))  # dark, slightly tinted: a per-clip distractor


def _write_transcript_clip(
    folder: Path, index: int, rng: np.random.Generator, *, size: int, fps: int, clip_seconds: float, k: int
) -> list[DemoScene]:
    scenes = _draw_scenes(rng, k)
    background = _background(rng)
    windows = _windows(clip_seconds, k, gap=1.0, end_margin=1.0)
    num_frames = int(round(clip_seconds * fps))
    times = (np.arange(num_frames) + 0.5) / fps
    # Scene i is on screen from the middle of the gap before window i to the middle of the gap after it.
    borders = [0.0] + [(windows[i][1] + windows[i + 1][0]) / 2 for i in range(k - 1)] + [clip_seconds]
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for i, scene in enumerate(scenes):
        selected = (times >= borders[i]) & (times < borders[i + 1])
        progress = (times[selected] - borders[i]) / (borders[i + 1] - borders[i])
        frames[selected] = render_scene_frames(scene, progress, size, background)
    name = f"clip_{index:05d}"
    _encode(folder / f"{name}.mp4", frames, fps)
    cues = []
    for i, (scene, (start, end)) in enumerate(zip(scenes, windows), start=1):
        # Cue inside the window, clear of its borders.
        cue_start, cue_end = start + 0.15 * (end - start), end - 0.15 * (end - start)
        cues.append(f"{i}\n{_srt_time(cue_start)} --> {_srt_time(cue_end)}\n{scene.sentence}\n")
    (folder / f"{name}.srt").write_text("\n".join(cues), encoding="utf-8")
    return scenes


def _write_caption_clip(
    folder: Path, index: int, rng: np.random.Generator, *, size: int, fps: int, seconds: float
) -> DemoScene:
    (scene,) = _draw_scenes(rng, 1)
    background = _background(rng)
    num_frames = int(round(seconds * fps))
    progress = (np.arange(num_frames) + 0.5) / num_frames
    name = f"caption_{index:05d}.mp4"
    _encode(folder / name, render_scene_frames(scene, progress, size, background), fps)
    return scene


# --------------------------------------------------------------------------------------------------------------
# Builder
# --------------------------------------------------------------------------------------------------------------


def build_demo_corpus(
    output_dir: str | os.PathLike[str],
    num_videos: int = 240,
    num_caption_videos: int | None = None,
    *,
    seed: int = 0,
    frame_size: int = 64,
    fps: int = 4,
    clip_seconds: float = 15.0,
    caption_seconds: float = 4.0,
    num_transcripts: int = 4,
    validation_size: int | float = 32,
    force: bool = False,
) -> DemoCorpus:
    """Generate (or reuse) the demo corpus under ``output_dir``.

    Args:
        output_dir: cache folder; holds ``raw/`` (the video and ``.srt`` files), ``transcript/`` and ``caption/``
            (``DatasetDict`` folders) and ``manifest.json``.
        num_videos: transcript clips (four scenes each).
        num_caption_videos: single-scene caption clips (default: ``num_videos``).
        seed: everything is drawn from it.
        frame_size: frames are ``frame_size x frame_size``.
        fps: frame rate of the files.
        clip_seconds: transcript clip length; keep it below 16 s so that the sampler's default arguments use the
            whole clip (see the module docstring).
        caption_seconds: caption clip length.
        num_transcripts: scenes (and cues) per transcript clip.
        validation_size: rows (int) or fraction held out as ``validation`` in each corpus.
        force: rebuild even when a cache with the same parameters exists.

    Returns:
        :class:`DemoCorpus` with the dataset paths.
    """
    from .corpus_builders import build_caption_corpus, build_transcript_corpus

    root = Path(output_dir)
    num_caption_videos = num_videos if num_caption_videos is None else num_caption_videos
    if clip_seconds - 1.0 - (num_transcripts - 1) <= 0:
        raise ValueError("clip_seconds too short for the windows")
    params = {
        "version": DEMO_CORPUS_VERSION,
        "num_videos": num_videos,
        "num_caption_videos": num_caption_videos,
        "seed": seed,
        "frame_size": frame_size,
        "fps": fps,
        "clip_seconds": clip_seconds,
        "caption_seconds": caption_seconds,
        "num_transcripts": num_transcripts,
        "validation_size": validation_size,
    }
    result = DemoCorpus(root, root / "transcript", root / "caption")
    manifest = root / "manifest.json"
    if not force and manifest.is_file():
        try:
            cached = json.loads(manifest.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            cached = None
        if cached is not None and cached.get("params") == params and result.transcript.is_dir():
            if num_caption_videos == 0 or result.caption.is_dir():
                logger.info("reusing the demo corpus in %s", root)
                return result
    if root.exists():
        for child in ("raw", "transcript", "caption", "manifest.json", "README.md"):
            target = root / child
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    raw_transcript, raw_caption = root / "raw" / "transcript", root / "raw" / "caption"
    raw_transcript.mkdir(parents=True, exist_ok=True)
    raw_caption.mkdir(parents=True, exist_ok=True)

    # One independent stream per clip: a clip does not change when the number of clips does.
    for index in range(num_videos):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0, index]))
        _write_transcript_clip(
            raw_transcript, index, rng, size=frame_size, fps=fps, clip_seconds=clip_seconds, k=num_transcripts
        )
    captions = []
    for index in range(num_caption_videos):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1, index]))
        scene = _write_caption_clip(raw_caption, index, rng, size=frame_size, fps=fps, seconds=caption_seconds)
        captions.append({"video": f"caption_{index:05d}.mp4", "caption": scene.sentence})
    (raw_caption / "captions.jsonl").write_text(
        "".join(json.dumps(c) + "\n" for c in captions), encoding="utf-8"
    )

    def _validation(n: int) -> int | float:
        if isinstance(validation_size, float):
            return validation_size
        return min(validation_size, max(n // 4, 0))  # keep most rows for training on tiny corpora

    transcript_report = build_transcript_corpus(
        raw_transcript, result.transcript, embed_videos=True, validation_size=_validation(num_videos), seed=seed
    )
    caption_report = None
    if num_caption_videos:
        caption_report = build_caption_corpus(
            raw_caption / "captions.jsonl",
            result.caption,
            embed_videos=True,
            validation_size=_validation(num_caption_videos),
            seed=seed,
        )
    card = f"""# TVTSv2 demo corpus

Generated by `modeling_tvtsv2.data.demo_corpus.build_demo_corpus` (version {DEMO_CORPUS_VERSION}).

* `transcript/`: {num_videos} clips of {clip_seconds:g} s, {frame_size}x{frame_size} at {fps} fps, {num_transcripts}
  scenes each ("a red square moves left", ...), with `.srt` transcripts ({transcript_report.num_rows}).
* `caption/`: {num_caption_videos} single-scene clips of {caption_seconds:g} s with one caption each
  ({caption_report.num_rows if caption_report else {}}).
* `raw/`: the video and subtitle files the datasets were built from.

Parameters: `{json.dumps(params)}`
"""
    (root / "README.md").write_text(card, encoding="utf-8")
    manifest.write_text(json.dumps({"params": params}, indent=2), encoding="utf-8")
    return result


def demo_scene_vocabulary() -> list[str]:
    """All sentences the demo can produce (handy for zero-shot checks)."""
    return [DemoScene(c, s, a).sentence for c in COLOURS for s in SHAPES for a in ACTIONS]



# --------------------------------------------------------------------------------------------------------------
# Command line: `processing/make_demo_corpus.py`
# --------------------------------------------------------------------------------------------------------------


@dataclass
class DemoCorpusArguments:
    """`processing/make_demo_corpus.py` (parsed by `modeling_tvtsv2.tools.arguments`: `--a_b` and `--a-b`,
    argument files)."""

    output: str = field(default="demo_corpus", metadata={"help": "cache folder"})
    num_videos: int = field(default=240, metadata={"help": "transcript clips"})
    num_caption_videos: int | None = field(default=None, metadata={"help": "caption clips (default: num_videos)"})
    seed: int = field(default=0, metadata={"help": "seed of the generated scenes"})
    frame_size: int = field(default=64, metadata={"help": "frame width = height in pixels"})
    fps: int = field(default=4, metadata={"help": "frames per second of the files"})
    validation_size: float = field(
        default=32, metadata={"help": "rows (>= 1) or fraction (< 1) held out per corpus"}
    )
    force: bool = field(default=False, metadata={"help": "rebuild even if a matching cache exists"})


DEMO_CORPUS_DESCRIPTION = (
    "Generate (or reuse) the TVTSv2 demo corpus: short synthetic videos of coloured shapes with timed transcripts "
    "(four scenes per clip) and a caption variant, saved as 🤗 Datasets."
)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """`processing/make_demo_corpus.py ...`: builds (or reuses) the demo corpus and prints where it is."""
    import logging as std_logging
    import time

    from ..tools.arguments import parse_tool_arguments
    from ..tools.package_logging import set_package_log_level

    (args,) = parse_tool_arguments(DemoCorpusArguments, argv, prog=prog, description=DEMO_CORPUS_DESCRIPTION)
    set_package_log_level(std_logging.INFO)  # progress through transformers' handler
    validation = int(args.validation_size) if args.validation_size >= 1 else args.validation_size
    started = time.perf_counter()
    corpus = build_demo_corpus(
        args.output,
        num_videos=args.num_videos,
        num_caption_videos=args.num_caption_videos,
        seed=args.seed,
        frame_size=args.frame_size,
        fps=args.fps,
        validation_size=validation,
        force=args.force,
    )
    print(f"transcript corpus: {corpus.transcript}")
    print(f"caption corpus:    {corpus.caption}")
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0
