"""Peak memory of a corpus build as the corpus grows: the builder writes rows as they are made.

Builds caption corpora of N rows (synthetic: a JSONL metadata file whose rows point at 16 tiny real videos, each
with its own 200-character caption) with `build_caption_corpus`, each build in a fresh process, and reports the
process's peak RSS. `--baseline` also measures what the builders did before (every row collected in a list, then
`Dataset.from_list` + `save_to_disk`) on the same rows, for comparison.

    taskset -c 0 python benchmarks/bench_corpus_memory.py --rows 10000 100000 --formats arrow parquet --baseline
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path


def _make_sources(folder: Path, rows: int) -> Path:
    import av
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(16):
        with av.open(str(folder / f"clip{k}.mp4"), mode="w") as container:
            stream = container.add_stream("mpeg4", rate=Fraction(5, 1))
            stream.width = stream.height = 32
            stream.pix_fmt = "yuv420p"
            for i in range(5):
                frame = np.full((32, 32, 3), (16 * k + 30 * i) % 256, dtype=np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    metadata = folder / "metadata.jsonl"
    with metadata.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            caption = f"row {i}: " + ("a person walks a dog along the beach at sunset " * 5)[:190]
            handle.write(json.dumps({"video": f"clip{i % 16}.mp4", "caption": caption, "id": f"r{i:07d}"}) + "\n")
    return metadata


def _child(args) -> None:
    metadata, output = Path(args.metadata), Path(args.output)
    started = time.perf_counter()
    if args.mode == "builder":
        from modeling_tvtsv2.data.corpus_builders import build_caption_corpus

        report = build_caption_corpus(metadata, output, id_column="id", output_format=args.format)
        rows = sum(report.num_rows.values())
    else:  # what the builders did before: every row in a list, then Dataset.from_list
        from datasets import Dataset

        from modeling_tvtsv2.data.corpus_builders import read_caption_metadata
        from modeling_tvtsv2.data.schema import caption_features
        from modeling_tvtsv2.video_decoding_tvtsv2 import probe_video

        probes = {}
        collected = []
        for record in read_caption_metadata(metadata):
            path = str((metadata.parent / record["video"]).resolve())
            if path not in probes:
                probes[path] = probe_video(path).duration
            collected.append({"video": path, "video_id": record["id"], "caption": record["caption"],
                              "duration": probes[path]})
        Dataset.from_list(collected, features=caption_features(embed_videos=False)).save_to_disk(str(output))
        rows = len(collected)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"rows": rows, "peak_rss_mib": round(peak_kib / 1024, 1),
                      "seconds": round(time.perf_counter() - started, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--formats", nargs="+", default=["arrow", "parquet"], choices=["arrow", "parquet",
                                                                                        "webdataset"])
    parser.add_argument("--baseline", action="store_true", help="also measure the former from_list build")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="builder", help=argparse.SUPPRESS)
    parser.add_argument("--format", default="arrow", help=argparse.SUPPRESS)
    parser.add_argument("--metadata", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    print(f"load average {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}")
    print(f"{'rows':>8} {'build':>22} {'peak RSS MiB':>13} {'seconds':>8}")
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as scratch:
        for rows in args.rows:
            metadata = _make_sources(Path(scratch) / f"src-{rows}", rows)
            runs = [("builder", fmt) for fmt in args.formats] + ([("from_list", "arrow")] if args.baseline else [])
            for mode, fmt in runs:
                output = Path(scratch) / f"out-{rows}-{mode}-{fmt}"
                command = [sys.executable, __file__, "--child", "--mode", mode, "--format", fmt,
                           "--metadata", str(metadata), "--output", str(output)]
                result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True)
                                    .stdout.strip().splitlines()[-1])
                label = f"{mode} ({fmt})" if mode == "builder" else "before: from_list"
                print(f"{result['rows']:>8} {label:>22} {result['peak_rss_mib']:>13} {result['seconds']:>8}")
                shutil.rmtree(output, ignore_errors=True)


if __name__ == "__main__":
    main()
