"""Data-path speed per CPU core: samples/s for the YT-Temporal training sample, raw vs prepared files, vs decord.

    python benchmarks/bench_data.py [--core 0] [--rounds 3] [--seconds 3] [--duration 45] [--keep DIR]

The process pins itself to one core (``os.sched_setaffinity``, like ``taskset -c CORE``) and runs torch with one
thread, as a DataLoader worker does; decoders get one thread (FFmpeg's automatic count is 1 on one core; decord
is given ``num_threads=1``).

Sample pattern (issue 12): 12 frames, random frame per segment, over a ~20 s span of the video, train transform
(Pillow-NEAREST shorter side 268, one random 224 crop) to ``[12, 3, 224, 224]``; the transcript samples also draw
K=4 windows and a 0.5 tube mask (the collator path, ``TVTSv2PretrainingCollator.build_sample``). Clips:

* ``720p``: a generated 1280x720 30 fps H.264 file of ``--duration`` s (libx264 ``veryfast``, keyframe every 250
  frames as web encoders do, B-frames, scrolling textured content); span: a random 20 s window per sample;
* ``obama``: ``tests/data/obama_speech.mp4`` (320x240, 8.8 s) and ``park``: ``tests/data/park.mp4`` (640x480,
  0.6 s): whole clip per sample (shorter than the span);
* each also as a *prepared* file (``modeling_tvtsv2.prepare_videos.transcode_video``: H.264, shorter side 268,
  ``tune=fastdecode``, no audio; by default every frame and a keyframe every second, the *previous* prepare-videos
  defaults, as in the published table; ``--max-fps 10 --keyframe-seconds 0.1`` gives the current ones).

``--variants SPEC ...`` measures instead the collator on the raw 720p file and on copies prepared with each
setting (e.g. ``defaults``, ``max_fps=none,keyframe_seconds=1``, ``max_fps=10,keyframe_seconds=0.3``), interleaved,
with the size per minute of each file.

Readers, interleaved round by round on the same windows (same seeds):

* ``collator``: ``TVTSv2PretrainingCollator.build_sample`` on a transcript row (720p) or caption row (short clips),
  mask 0.5 — the training path (``read_video_pixels``: decode + crop in one pass);
* ``read+preprocess``: ``read_video`` then ``preprocess_frames`` (the previous collator path: whole RGB frames);
* ``decord``: ``decord.VideoReader`` + ``get_batch`` on the same frame choice, then ``preprocess_frames``.

Prints one line per setting and a JSON summary: samples per CPU second of the pinned core and per wall second
(medians of rounds), ratios (from the CPU-time figures), load average before/after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from modeling_tvtsv2.data import TVTSv2PretrainingCollator  # noqa: E402
from modeling_tvtsv2.prepare_videos import TranscodeSettings, transcode_video  # noqa: E402
from modeling_tvtsv2.video_processing_tvtsv2 import preprocess_frames, read_video, sample_frame_indices  # noqa: E402


NUM_FRAMES = 12
SPAN = 20.0


def make_720p(path: Path, seconds: int, rate: int = 30) -> float:
    """A 1280x720 H.264 file with scrolling textured content (keyframe every 250 frames); returns seconds taken."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (90, 400, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)  # 720 x 3200
    texture = (texture.astype(np.int16) + rng.integers(-12, 13, texture.shape)).clip(0, 255).astype(np.uint8)
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "veryfast", "g": "250", "crf": "23"}
        for i in range(seconds * rate):
            offset = (i * 4) % (texture.shape[1] - 1280)
            pixels = np.ascontiguousarray(texture[:, offset : offset + 1280])
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return time.perf_counter() - start


def window(rng: np.random.Generator, duration: float | None) -> tuple[float | None, float | None]:
    if duration is None or duration <= SPAN + 1:
        return None, None
    start = float(rng.uniform(0, duration - SPAN - 0.5))
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
    """The training path: one sample built by the collator (span + K=4 windows for transcripts, mask 0.5)."""

    def __init__(self):
        self.collator = TVTSv2PretrainingCollator(tokenizer=None, num_frames=NUM_FRAMES, mask_ratio=0.5)
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
    """The collator on the raw 720p file and on prepared copies made with each variant, interleaved by round."""
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_data_"))
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / f"720p_{args.duration}s.mp4"
    if not raw.exists():
        make_720p(raw, args.duration)
    files = {"raw": raw}
    info: dict[str, dict] = {"raw": {"mb_per_min": round(raw.stat().st_size / 2**20 / args.duration * 60, 2)}}
    for spec in args.variants:
        settings = parse_variant(spec)
        tag = "".join(c if c.isalnum() or c in "=.," else "_" for c in spec)
        target = folder / f"720p_{args.duration}s_prepared_{tag}.mp4"
        if not target.exists():
            started = time.perf_counter()
            done = transcode_video(raw, target, settings)
            info[spec] = {"prepare_frames_per_s": round(done["frames"] / (time.perf_counter() - started), 1),
                          "fps": done["fps"], "keyframe_interval": done["keyframe_interval"]}
        info.setdefault(spec, {})["mb_per_min"] = round(target.stat().st_size / 2**20 / args.duration * 60, 2)
        files[spec] = target
    os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    reader = CollatorSample()
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
    print("\nvariant | MB per minute | samples/CPU-s (median) | vs raw")
    table = {}
    for name in names:
        rate = statistics.median(rates[name])
        table[name] = {**info.get(name, {}), "samples_per_cpu_s": round(rate, 2), "vs_raw": round(rate / raw_rate, 2)}
        print(f"{name} | {info[name]['mb_per_min']} | {rate:.2f} | {rate / raw_rate:.2f}x")
    print(json.dumps({"variants": table, "versions": {"python": platform.python_version(), "torch": torch.__version__,
                                                      "av": av.__version__},
                      "load_before": load_before, "load_after": load_after}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin to (default 0)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per reader, clip and round")
    parser.add_argument("--duration", type=int, default=45, help="length of the generated 720p file (s)")
    parser.add_argument("--keep", type=Path, help="folder for the generated files (reused when present)")
    parser.add_argument("--no-decord", "--no_decord", action="store_true")
    parser.add_argument("--clips", nargs="+", default=["720p", "obama", "park"], choices=["720p", "obama", "park"])
    parser.add_argument("--keyframe-seconds", "--keyframe_seconds", type=float, default=1.0,
                        help="keyframe interval of the prepared files (default 1, prepare-videos' previous default)")
    parser.add_argument("--max-fps", "--max_fps", type=float, default=None,
                        help="frame-rate cap of the prepared files (default: none, prepare-videos' previous default)")
    parser.add_argument("--variants", nargs="+", default=None, metavar="SPEC",
                        help="instead of the reader comparison: the collator on the raw 720p file and on prepared "
                        "copies made with each SPEC (comma-separated TranscodeSettings fields, e.g. "
                        "'max_fps=10,keyframe_seconds=0.3'; 'defaults' for the defaults), interleaved")
    args = parser.parse_args()
    if args.variants:
        run_variants(args)
        return

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_data_"))
    folder.mkdir(parents=True, exist_ok=True)
    raw_720p = folder / f"720p_{args.duration}s.mp4"
    setup: dict[str, float] = {}
    if not raw_720p.exists() and "720p" in args.clips:
        setup["generate_720p_s"] = round(make_720p(raw_720p, args.duration), 2)
    clips = {"720p": raw_720p, "obama": REPO / "tests/data/obama_speech.mp4", "park": REPO / "tests/data/park.mp4"}
    clips = {name: path for name, path in clips.items() if name in args.clips}
    prepared = {}
    for name, path in clips.items():
        target = folder / f"{name}_prepared_k{args.keyframe_seconds:g}_f{args.max_fps or 0:g}.mp4"
        if not target.exists():
            started = time.perf_counter()
            settings = TranscodeSettings(keyframe_seconds=args.keyframe_seconds, max_fps=args.max_fps)
            info = transcode_video(path, target, settings)
            setup[f"prepare_{name}_frames_per_s"] = round(info["frames"] / (time.perf_counter() - started), 1)
        prepared[name] = target

    os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    readers = {"collator": CollatorSample(), "read+preprocess": read_then_preprocess}
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
            duration = probe_duration(path) if clip == "720p" else None
            names = list(readers)
            names = names[round_index % len(names) :] + names[: round_index % len(names)]  # rotate the order
            for name in names:
                rate, wall_rate, count = measure(readers[name], path, duration, args.seconds, seed=round_index)
                rates.setdefault((clip, kind, name), []).append(rate)
                wall_rates.setdefault((clip, kind, name), []).append(wall_rate)
                print(f"round {round_index} {clip:5s} {kind:8s} {name:16s} {rate:7.2f} samples/CPU-s "
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
        print(f"{clip:5s}: " + " | ".join(line))
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
    versions = {"python": platform.python_version(), "torch": torch.__version__, "av": av.__version__}
    try:
        import decord

        versions["decord"] = decord.__version__
    except ImportError:
        pass
    print(json.dumps({"samples_per_cpu_s": summary, "samples_per_wall_s": wall_summary, "ratios": ratios,
                      "setup": setup, "versions": versions,
                      "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                      "load_before": load_before, "load_after": load_after}, indent=1))


if __name__ == "__main__":
    main()
