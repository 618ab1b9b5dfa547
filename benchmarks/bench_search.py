"""Exact vs approximate (FAISS) search over N synthetic unit vectors stored as float16, one core.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_search.py --num-vectors 1000000 --dim 512 \\
        --kinds exact faiss-hnsw faiss-ivfpq

For each kind: build time, memory (resident set growth and the index's own bytes), queries/s for one query at a time
and recall@10 against exact search. The ANN kinds go through the code `tvtsv2 index` / `tvtsv2 search` run
(`evaluation.ann_index`: the same factory strings, default parameters and training sample; candidates rescored
exactly against the stored float16 rows, as `VideoIndex.rescore` does). The vectors are Gaussian directions, the
hardest case for ANN indexes (no cluster structure); each query is a stored vector plus noise (cosine ~0.7 to it),
so every query has a true nearest row. `--clusters C` draws the vectors around C centres instead.
"""

import argparse
import os
import resource
import time

import numpy as np
import torch

from modeling_tvtsv2.evaluation.ann_index import (
    AnnIndex,
    AnnParameters,
    faiss_factory_string,
    import_faiss,
    new_faiss_index,
    set_search_parameters,
    training_sample,
)
from modeling_tvtsv2.evaluation.search import exact_top_k


def rss_gib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**30


def unit_vectors(count: int, dim: int, seed: int, clusters: int = 0, chunk: int = 250_000) -> np.ndarray:
    """Gaussian directions; with `clusters`, each vector is one of `clusters` random centres plus noise (cosine ~0.7
    to its centre), closer to embeddings of the windows of a video library (neighbouring windows look alike)."""
    out = np.empty((count, dim), dtype=np.float16)
    generator = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(max(clusters, 1), dim, generator=generator), dim=-1)
    for start in range(0, count, chunk):
        block = torch.randn(min(chunk, count - start), dim, generator=generator)
        if clusters:
            picked = torch.randint(0, clusters, (len(block),), generator=generator)
            block = centres[picked] + block / dim**0.5
        out[start : start + len(block)] = torch.nn.functional.normalize(block, dim=-1).half().numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--num-vectors", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--num-queries", type=int, default=200)
    parser.add_argument("--exact-queries", type=int, default=10, help="queries timed one by one for exact search")
    parser.add_argument("--clusters", type=int, default=0, help="clustered vectors around this many centres")
    parser.add_argument("--kinds", nargs="+", default=["exact", "faiss-hnsw", "faiss-ivfpq"])
    parser.add_argument("--ef-search", type=int, nargs="+", default=[128])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16])
    parser.add_argument("--refine", type=int, nargs="+", default=[1, 4], help="candidates per hit, rescored exactly")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    start = time.perf_counter()
    keys = unit_vectors(args.num_vectors, args.dim, seed=0, clusters=args.clusters)
    print(f"{args.num_vectors:,} x {args.dim} float16 ({keys.nbytes / 2**30:.2f} GiB) made in "
          f"{time.perf_counter() - start:.0f} s; RSS {rss_gib():.2f} GiB", flush=True)  # fmt: skip
    generator = torch.Generator().manual_seed(1)
    picked = torch.randint(0, args.num_vectors, (args.num_queries,), generator=generator)
    noisy = torch.from_numpy(keys[picked.numpy()]).float() + torch.randn(args.num_queries, args.dim,
                                                                        generator=generator) / args.dim**0.5
    queries = torch.nn.functional.normalize(noisy, dim=-1)

    start = time.perf_counter()
    _, truth = exact_top_k(queries, keys, 10)  # ground truth, batched
    print(f"exact top-10 of {args.num_queries} queries (one batch): {time.perf_counter() - start:.1f} s", flush=True)
    if "exact" in args.kinds:
        start = time.perf_counter()
        for query in queries[: args.exact_queries]:
            exact_top_k(query[None], keys, 10)
        per_query = (time.perf_counter() - start) / args.exact_queries
        print(f"RESULT exact: {1 / per_query:.2f} queries/s ({per_query * 1000:.0f} ms/query), recall@10 1.0, "
              f"no build, no extra memory", flush=True)  # fmt: skip

    faiss = import_faiss()
    faiss.omp_set_num_threads(1)
    for kind in [k for k in args.kinds if k != "exact"]:
        params = AnnParameters().resolved(kind, args.num_vectors, args.dim)
        rss_before = rss_gib()
        start = time.perf_counter()
        index = new_faiss_index(kind, params, args.dim)
        if not index.is_trained:
            index.train(keys[training_sample(args.num_vectors, params)].astype(np.float32))
        trained = time.perf_counter() - start
        for begin in range(0, args.num_vectors, 100_000):  # float32 batches, as datasets' add_faiss_index does
            index.add(keys[begin : begin + 100_000].astype(np.float32))
        build = time.perf_counter() - start
        index_bytes = faiss.serialize_index(index).nbytes
        print(f"{kind} ({faiss_factory_string(kind, params)}): built in {build:.0f} s (training {trained:.0f} s), "
              f"index {index_bytes / 2**30:.2f} GiB, RSS +{rss_gib() - rss_before:.2f} GiB", flush=True)  # fmt: skip
        sweep = args.ef_search if kind == "faiss-hnsw" else args.nprobe
        for value in sweep:
            for refine in args.refine:
                setting = {"ef_search": value} if kind == "faiss-hnsw" else {"nprobe": value}
                run_params = AnnParameters(**{**params.__dict__, **setting, "refine": refine})
                set_search_parameters(index, kind, run_params)
                ann = AnnIndex(index, kind, run_params, args.num_vectors)
                found = []
                start = time.perf_counter()
                for query in queries:
                    rows = ann.candidates(query[None].numpy(), 10)[0]
                    rows = np.unique(rows[rows >= 0])
                    _, order = exact_top_k(query[None], keys[rows], 10)
                    found.append(rows[order[0].numpy()])
                per_query = (time.perf_counter() - start) / len(queries)
                recall = np.mean([len(set(f) & set(t.tolist())) / 10 for f, t in zip(found, truth)])
                top1 = np.mean([len(f) > 0 and f[0] == t[0] for f, t in zip(found, truth)])
                print(f"RESULT {kind} {setting} refine={refine}: {1 / per_query:.1f} queries/s "
                      f"({per_query * 1000:.2f} ms/query), recall@10 {recall:.3f}, top-1 found {top1:.3f}",
                      flush=True)  # fmt: skip
        del index
    print(f"load average at end: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
