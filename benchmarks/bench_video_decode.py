"""Decode + sample + preprocess speed: targeted seeking (`read_video`) vs a decode-everything baseline.

    python benchmarks/bench_video_decode.py [--repeats 3] [--duration 60] [--keep DIR] [--torch-threads 1]

Clips: (a) tests/data/obama_speech.mp4 (320x240, 105 frames), (b) a 1280x720, 30 fps H.264 file of `--duration`
seconds generated here (libx264 ultrafast, keyframe every 250 frames, moving textured content) into a temporary
folder. Each clip is read as 12 frames (original evaluation sampling) and run through the evaluation transform
(-> [12, 3, 224, 224]); on the long file a 4 s window at mid-file is read too (12 frames, like a transcript span).

* targeted: `read_video` (packet index, seek to the keyframe before each needed frame, stop after the last one).
* baseline: what a straightforward PyAV reader does (transformers' `read_video_pyav` pattern): take the frame
  count from the header, decode every frame from the start in one pass (same PyAV threading), convert the
  sampled ones; for a window, decode from the start until the window end.

Times are medians over `--repeats` runs (x10 for the short clip) after one warm-up, per clip, decode + sample +
transform; the two readers alternate run by run so that both see the same machine load. Decoding uses
PyAV's frame+slice threading in both readers; the transform runs with `--torch-threads` torch threads (default 1,
as in DataLoader workers). Prints one line per setting and a JSON summary (clips/s, output frames/s, frames
decoded per clip, speed-up of targeted over baseline).
"""

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from modeling_tvtsv2.video_processing_tvtsv2 import preprocess_frames, read_video, sample_frame_indices


REPO = Path(__file__).resolve().parent.parent
OBAMA = REPO / "tests" / "data" / "obama_speech.mp4"
NUM_FRAMES = 12


def make_720p(path: Path, seconds: int, rate: int = 30) -> float:
    """Write a 1280x720 H.264 file with scrolling textured content; returns the generation time in seconds."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    # Smooth random texture (upsampled noise) plus fine noise, scrolled a little every frame: gives the decoder
    # real motion-compensated work instead of a static picture.
    coarse = rng.integers(0, 256, (90, 400, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)  # 720 x 3200
    texture = (texture.astype(np.int16) + rng.integers(-12, 13, texture.shape)).clip(0, 255).astype(np.uint8)
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "250", "crf": "23"}
        for i in range(seconds * rate):
            offset = (i * 4) % (texture.shape[1] - 1280)
            pixels = np.ascontiguousarray(texture[:, offset : offset + 1280])
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return time.perf_counter() - start


def baseline_read(path: Path, start: float | None = None, end: float | None = None) -> tuple[torch.Tensor, int]:
    """Decode-everything reader: header frame count, one sequential pass from the first frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate)
        total = stream.frames
        first = 0 if start is None else int(np.ceil(start * rate - 1e-9))
        last = total if end is None else min(total, int(np.ceil(end * rate - 1e-9)))
        wanted = [first + i for i in sample_frame_indices(last - first, NUM_FRAMES, "uniform")]
        keep = set(wanted)
        pixels, decoded = {}, 0
        for index, frame in enumerate(container.decode(stream)):
            decoded += 1
            if index in keep:
                pixels[index] = frame.to_ndarray(format="rgb24")
            if end is not None and index >= last - 1:
                break
    return torch.from_numpy(np.stack([pixels[i] for i in wanted])), decoded


def targeted_read(path: Path, start: float | None = None, end: float | None = None) -> tuple[torch.Tensor, int]:
    frames, meta = read_video(path, NUM_FRAMES, "uniform", start=start, end=end)
    return frames, meta.decoded_frames


def measure_pair(path: Path, repeats: int, **window) -> dict[str, dict]:
    """Time both readers on one clip, alternating runs so that both see the same machine load."""
    readers = {"targeted": targeted_read, "baseline": baseline_read}
    times: dict[str, list[float]] = {name: [] for name in readers}
    decoded: dict[str, int] = {}
    for reader in readers.values():
        reader(path, **window)  # warm-up (file cache, codec init)
    for _ in range(repeats):
        for name, reader in readers.items():
            t0 = time.perf_counter()
            frames, decoded[name] = reader(path, **window)
            pixels = preprocess_frames(frames, mode="eval")
            times[name].append(time.perf_counter() - t0)
            assert pixels.shape == (NUM_FRAMES, 3, 224, 224)
    results = {}
    for name in readers:
        seconds = float(np.median(times[name]))
        results[name] = {
            "seconds_per_clip": round(seconds, 4),
            "clips_per_s": round(1 / seconds, 2),
            "frames_per_s": round(NUM_FRAMES / seconds, 1),
            "decoded_frames_per_clip": decoded[name],
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (median reported)")
    parser.add_argument("--duration", type=int, default=60, help="seconds of generated 720p video")
    parser.add_argument("--keep", type=Path, default=None, help="write/reuse the generated file in this folder")
    parser.add_argument(
        "--torch-threads", type=int, default=1,
        help="torch intra-op threads for the transform (DataLoader workers run with 1; FFmpeg threads are separate)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)

    folder = args.keep or Path(tempfile.mkdtemp(prefix="tvtsv2_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    long_video = folder / f"synthetic_720p_{args.duration}s.mp4"
    generation = None
    if not long_video.exists():
        generation = make_720p(long_video, args.duration)
    middle = args.duration / 2
    settings = [
        ("obama_speech.mp4 (320x240, 8.7 s), whole clip", OBAMA, {}),
        (f"synthetic 720p {args.duration} s, whole clip", long_video, {}),
        (f"synthetic 720p {args.duration} s, window {middle:g}-{middle + 4:g} s", long_video,
         {"start": middle, "end": middle + 4}),
    ]  # fmt: skip
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "av": av.__version__,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "generation_seconds": None if generation is None else round(generation, 1),
        "settings": [],
    }
    for name, path, window in settings:
        # short clips are cheap: more runs for a stable median
        repeats = args.repeats * (10 if path == OBAMA else 1)
        row = {"clip": name, **measure_pair(path, repeats, **window)}
        for label in ("targeted", "baseline"):
            stats = row[label]
            print(
                f"{name:52s} {label:9s} {stats['clips_per_s']:8.2f} clips/s {stats['frames_per_s']:8.1f} frames/s "
                f"({stats['decoded_frames_per_clip']} frames decoded per clip)",
                flush=True,
            )
        row["speedup"] = round(row["baseline"]["seconds_per_clip"] / row["targeted"]["seconds_per_clip"], 2)
        results["settings"].append(row)
    print(json.dumps(results, indent=2))
    if args.keep is None:
        long_video.unlink(missing_ok=True)
        folder.rmdir()


if __name__ == "__main__":
    main()
