#!/usr/bin/env python
"""Build a TVTSv2 transcript corpus (🤗 Dataset on disk) from a folder of videos with transcripts next to them.

Each video ``name.mp4`` needs ``name.json`` (YT-Temporal ASR words), ``name.vtt`` / ``name.<lang>.vtt`` (WebVTT,
YouTube auto-captions included) or ``name.srt``. Unreadable videos, unparsable or empty transcripts are reported
and skipped.

    python processing/prepare_transcript_corpus.py --videos DIR --output OUT [--embed_videos] [--validation_size 0.05]
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

from modeling_tvtsv2.data.corpus_builders import build_transcript_corpus
from modeling_tvtsv2.video_decoding_tvtsv2 import VIDEO_EXTENSIONS


def _size(value: str) -> float | int:
    number = float(value)
    return int(number) if number >= 1 else number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", required=True, help="folder of videos with transcripts (searched recursively)")
    parser.add_argument("--output", required=True, help="output folder (a DatasetDict, README.md, build_report.json)")
    parser.add_argument("--embed_videos", action="store_true", help="embed video bytes (default: keep absolute paths)")
    parser.add_argument("--timing", choices=("auto", "segments", "words"), default="auto",
                        help="transcript column: word-level 'words', cue-level 'segments', or auto (default)")
    parser.add_argument("--validation_size", type=_size, default=0,
                        help="fraction (<1) or number of rows held out as the 'validation' split (default 0)")
    parser.add_argument("--min_words", type=int, default=1, help="skip transcripts with fewer words (default 1)")
    parser.add_argument("--raw_asr_words", "--raw-asr-words", action="store_true",
                        help="YT-Temporal JSON: keep the raw ASR words instead of the 'denoised' text aligned to them")
    parser.add_argument("--extensions", nargs="+", default=list(VIDEO_EXTENSIONS), help="video file suffixes")
    parser.add_argument("--no_recursive", action="store_true", help="only scan the top folder")
    parser.add_argument("--num_workers", type=int, default=1, help="processes probing videos (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/validation split")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a non-empty output folder as a whole, once the new corpus is complete")
    args = parser.parse_args(argv)
    logging.getLogger("modeling_tvtsv2").setLevel(logging.INFO)  # prints through transformers' handler

    try:
        report = build_transcript_corpus(
            args.videos,
            args.output,
            embed_videos=args.embed_videos,
            timing=args.timing,
            validation_size=args.validation_size,
            min_words=args.min_words,
            video_extensions=args.extensions,
            recursive=not args.no_recursive,
            num_workers=args.num_workers,
            seed=args.seed,
            overwrite=args.overwrite,
            progress=lambda items: tqdm(items, desc="probing videos", unit="video"),
            use_denoised=not args.raw_asr_words,
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
