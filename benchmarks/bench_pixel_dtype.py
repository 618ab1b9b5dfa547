"""float32 vs uint8 pixel batches from the pre-training collator (issue 12), per CPU core.

    taskset -c 0 python benchmarks/bench_pixel_dtype.py [--core 0] [--rounds 5] [--samples 20] [--keep DIR]

The process pins itself to one core and runs torch with one thread, as a DataLoader worker does. For each clip
(``tests/data/obama_speech.mp4`` raw, and a copy prepared by ``modeling_tvtsv2.data.prepare_videos.transcode_video``
with the default settings) it measures, interleaved round by round with the order rotated, on the same sample keys
(the same draws):

* ``build_sample``: CPU ms per sample of ``TVTSv2PretrainingCollator.build_sample`` (caption row, whole clip, 12
  frames, train transform, 224 crop, mask 0.5) with ``pixel_dtype="float32"`` and ``"uint8"``;
* ``share``: CPU ms to move one sample's pixels into shared memory (``Tensor.share_memory_()``, the copy a
  DataLoader worker makes to hand a batch to the training process);
* ``normalize``: CPU ms of ``normalize_video_pixels`` on one uint8 sample (what ``TVTSv2Trainer`` does on the
  training device; on a CPU-only run it is this cost, moved from the worker to the training process).

Prints one line per round and a JSON summary (medians, ratios, bytes per sample, load average before/after).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import torch


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from modeling_tvtsv2.data.collator import TVTSv2PretrainingCollator  # noqa: E402
from modeling_tvtsv2.data.prepare_videos import transcode_video  # noqa: E402
from modeling_tvtsv2.video_transforms_tvtsv2 import normalize_video_pixels  # noqa: E402

DTYPES = ("float32", "uint8")


def cpu_ms(function, repeats: int) -> tuple[float, object]:
    started = time.process_time()
    result = None
    for index in range(repeats):
        result = function(index)
    return (time.process_time() - started) * 1000 / repeats, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=20, help="samples per clip, dtype and round")
    parser.add_argument("--keep", type=Path, help="folder for the prepared file (reused when present)")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_pixel_dtype_"))
    folder.mkdir(parents=True, exist_ok=True)
    raw = REPO / "tests/data/obama_speech.mp4"
    prepared = folder / "obama_prepared.mp4"
    if not prepared.exists():
        transcode_video(raw, prepared)
    clips = {"obama/raw": str(raw), "obama/prepared": str(prepared)}

    os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    collators = {
        dtype: TVTSv2PretrainingCollator(tokenizer=None, num_frames=12, mask_ratio=0.5, pixel_dtype=dtype)
        for dtype in DTYPES
    }
    times: dict[str, list[float]] = {}
    nbytes: dict[str, int] = {}
    for round_index in range(args.rounds):
        for clip, path in clips.items():
            row = {"video": path, "video_id": "clip", "caption": "a caption"}
            order = DTYPES[round_index % 2 :] + DTYPES[: round_index % 2]
            for dtype in order:
                collator = collators[dtype]
                key = lambda i: (round_index, i)  # noqa: E731 - the same draws for both dtypes
                ms, sample = cpu_ms(lambda i: collator.build_sample(row, key(i)), args.samples)
                times.setdefault(f"{clip}/build_sample/{dtype}", []).append(ms)
                pixels = sample["pixel_values_videos"]
                nbytes[dtype] = pixels.numel() * pixels.element_size()
                copies = [pixels.clone() for _ in range(args.samples)]
                share_ms, _ = cpu_ms(lambda i: copies[i].share_memory_(), args.samples)
                times.setdefault(f"{clip}/share/{dtype}", []).append(share_ms)
                line = f"round {round_index} {clip:15s} {dtype:8s} build_sample {ms:7.2f} ms  share {share_ms:6.3f} ms"
                if dtype == "uint8":
                    norm_ms, _ = cpu_ms(lambda i: normalize_video_pixels(pixels), args.samples)
                    times.setdefault(f"{clip}/normalize/uint8", []).append(norm_ms)
                    line += f"  normalize {norm_ms:6.3f} ms"
                print(line, flush=True)
    load_after = os.getloadavg()

    medians = {name: round(statistics.median(values), 3) for name, values in times.items()}
    ratios = {}
    for clip in clips:
        build = {dtype: medians[f"{clip}/build_sample/{dtype}"] for dtype in DTYPES}
        ratios[f"{clip}: build_sample float32/uint8"] = round(build["float32"] / build["uint8"], 3)
        ratios[f"{clip}: build_sample saved ms"] = round(build["float32"] - build["uint8"], 3)
        ratios[f"{clip}: share float32/uint8"] = round(
            medians[f"{clip}/share/float32"] / medians[f"{clip}/share/uint8"], 2
        )
    for key, value in ratios.items():
        print(f"{key}: {value}")
    print(json.dumps({"median_cpu_ms_per_sample": medians, "ratios": ratios, "bytes_per_sample": nbytes,
                      "versions": {"python": platform.python_version(), "torch": torch.__version__,
                                   "av": av.__version__},
                      "load_before": load_before, "load_after": load_after}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
