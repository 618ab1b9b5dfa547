#!/usr/bin/env python
"""Build a TVTSv2 caption corpus (🤗 Dataset on disk, WebVid style) from a CSV / TSV / JSONL file of video paths
and captions.

Relative video paths start from ``--video_root`` (default: the metadata file's folder). Missing or unreadable
videos and empty captions are reported and skipped.

    python processing/prepare_caption_corpus.py --metadata captions.csv --output OUT [--embed_videos]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm.auto import tqdm

try:
    import modeling_tvtsv2  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_tvtsv2.data.corpus_builders import build_caption_corpus


def _size(value: str) -> float | int:
    number = float(value)
    return int(number) if number >= 1 else number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metadata", required=True, help=".csv, .tsv (with a header line), .jsonl or .json file")
    parser.add_argument("--output", required=True, help="output folder (a DatasetDict, README.md, build_report.json)")
    parser.add_argument("--video_column", default="video", help="column of the video path (default 'video')")
    parser.add_argument("--caption_column", default="caption", help="column of the caption (default 'caption')")
    parser.add_argument("--id_column", default=None, help="column of a video id (default: path without suffix)")
    parser.add_argument("--video_root", default=None, help="folder relative paths start from")
    parser.add_argument("--video_suffix", default="", help="suffix added to paths without one (WebVid: .mp4)")
    parser.add_argument("--embed_videos", action="store_true", help="embed video bytes (default: keep absolute paths)")
    parser.add_argument("--validation_size", type=_size, default=0,
                        help="fraction (<1) or number of rows held out as the 'validation' split (default 0)")
    parser.add_argument("--num_workers", type=int, default=1, help="processes probing videos (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/validation split")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a non-empty output folder as a whole, once the new corpus is complete")
    args = parser.parse_args(argv)
    logging.getLogger("modeling_tvtsv2").setLevel(logging.INFO)  # prints through transformers' handler

    try:
        report = build_caption_corpus(
            args.metadata,
            args.output,
            video_column=args.video_column,
            caption_column=args.caption_column,
            id_column=args.id_column,
            video_root=args.video_root,
            video_suffix=args.video_suffix,
            embed_videos=args.embed_videos,
            validation_size=args.validation_size,
            num_workers=args.num_workers,
            seed=args.seed,
            overwrite=args.overwrite,
            progress=lambda items: tqdm(items, desc="probing videos", unit="video"),
        )
    except (OSError, ValueError) as error:  # bad --output/--videos/--metadata, or no usable row at all
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    for member in report.skipped:
        print(f"  skipped {member.source}: {member.reason} {member.detail}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
