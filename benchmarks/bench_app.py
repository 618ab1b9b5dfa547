"""Time to results of `tvtsv2 app` for a 10k-row index on CPU: what one click on Search costs on the server.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_app.py --rows 10000 --preset b16

A windowed index of `--rows` rows (random unit embeddings in the model's dimension; every window points at a
moment of tests/data/obama_speech.mp4) and a randomly initialised model of the preset (B/16: the text tower of the
real model, so the query embedding costs what it costs there). One search = what the app's Search button runs:
the query embedding (cached after the first time), the search (exact, 10k rows) and the thumbnails of the top 8
moments (PyAV decode of each middle frame; cached after the first time). Cold = new query and new moments; warm =
the same query again. CPU time is printed beside wall time: on a shared, loaded box it is the better estimate of
the wall time on an idle laptop core.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import torch

from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
from modeling_tvtsv2.evaluation.app import MomentLibrary
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor

VIDEOS = Path(__file__).resolve().parents[1] / "tests" / "data"


def write_index(folder: Path, rows: int, dim: int) -> None:
    generator = np.random.default_rng(0)
    embeddings = generator.standard_normal((rows, dim)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    starts = generator.uniform(0, 6.5, rows).round(2)
    datasets.Dataset.from_dict({
        "video_id": ["obama_speech.mp4"] * rows, "row": [0] * rows, "start": starts, "end": starts + 2.0,
        "video_embedding": embeddings.astype(np.float16),
    }).save_to_disk(str(folder))  # fmt: skip
    manifest = {"settings": {"source": str(VIDEOS), "windows": [2.0, 1.0]}, "complete": True, "num_rows": rows}
    (folder / "extraction.json").write_text(json.dumps(manifest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--preset", default="b16")
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--queries", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    datasets.disable_progress_bars()
    print(f"load average at start: {os.getloadavg()}")
    config = TVTSv2Config.from_preset(args.preset)
    model = TVTSv2Model(config).eval()
    processor = TVTSv2Processor.from_defaults(image_size=config.vision_config.image_size)
    with tempfile.TemporaryDirectory() as folder:
        write_index(Path(folder) / "index", args.rows, config.projection_dim)
        start = time.perf_counter()
        library = MomentLibrary(Path(folder) / "index", model=(model, processor))
        print(f"index of {len(library.index):,} rows opened in {time.perf_counter() - start:.2f} s")
        for round_name in ("cold", "warm"):
            times = []
            for q in range(args.queries):
                start, cpu_start = time.perf_counter(), time.process_time()
                hits = library.search(f"query number {q}: a man gives a speech", args.top_k)
                searched = time.perf_counter() - start
                for hit in hits:
                    library.thumbnail(hit.video_id, hit.start, hit.end)
                times.append((searched, time.perf_counter() - start, time.process_time() - cpu_start))
            search_s, total_s, cpu_s = np.median(np.array(times), axis=0)
            print(f"{round_name}: median over {args.queries} queries: query embedding + search "
                  f"{search_s * 1000:.0f} ms,"
                  f" + {args.top_k} thumbnails = {total_s * 1000:.0f} ms wall ({cpu_s * 1000:.0f} ms CPU time)")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
