"""Exact search speed (`modeling_tvtsv2.evaluation.search.exact_top_k`) over N random unit vectors stored as float16.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_search.py --num-vectors 1000000 --dim 512

Prints the time of one call for batches of 1 and 16 queries (the chunks are upcast to float32 as they are scored).
"""

import argparse
import os
import time

import torch

from modeling_tvtsv2.evaluation.search import exact_top_k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--num-vectors", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    keys = torch.nn.functional.normalize(torch.randn(args.num_vectors, args.dim, generator=generator), dim=-1)
    keys = keys.half().numpy()
    queries = torch.nn.functional.normalize(torch.randn(16, args.dim, generator=generator), dim=-1)
    print(f"load average: {os.getloadavg()}")
    for count in (1, 16):
        start = time.perf_counter()
        exact_top_k(queries[:count], keys, args.top_k)
        elapsed = time.perf_counter() - start
        print(f"{args.num_vectors:,} x {args.dim} float16, {count} queries: {elapsed:.2f} s")


if __name__ == "__main__":
    main()
