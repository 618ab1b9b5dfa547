#!/usr/bin/env python
"""Generate (or reuse) the TVTSv2 demo corpus: short synthetic videos of coloured shapes with timed transcripts
(four scenes per clip) and a caption variant, saved as 🤗 Datasets.

    python processing/make_demo_corpus.py --output demo_corpus [--num_videos 240] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

try:
    import modeling_tvtsv2  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_tvtsv2.data.demo_corpus import build_demo_corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="demo_corpus", help="cache folder (default ./demo_corpus)")
    parser.add_argument("--num_videos", type=int, default=240, help="transcript clips (default 240)")
    parser.add_argument("--num_caption_videos", type=int, default=None, help="caption clips (default: num_videos)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frame_size", type=int, default=64, help="frame width = height in pixels (default 64)")
    parser.add_argument("--fps", type=int, default=4, help="frames per second of the files (default 4)")
    parser.add_argument("--validation_size", type=float, default=32,
                        help="rows (>= 1) or fraction (< 1) held out per corpus (default 32)")
    parser.add_argument("--force", action="store_true", help="rebuild even if a matching cache exists")
    args = parser.parse_args(argv)
    logging.getLogger("modeling_tvtsv2").setLevel(logging.INFO)  # prints through transformers' handler

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


if __name__ == "__main__":
    sys.exit(main())
