#!/usr/bin/env python
"""Build a TVTSv2 caption corpus (🤗 Dataset on disk, WebVid style) from a CSV / TSV / JSONL file of video paths
and captions.

Relative video paths start from ``--video_root`` (default: the metadata file's folder). Missing or unreadable
videos and empty captions are reported and skipped.

    python processing/prepare_caption_corpus.py --metadata captions.csv --output OUT [--embed_videos]
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import modeling_tvtsv2  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_tvtsv2.data.corpus_builders import caption_corpus_main


def main(argv: list[str] | None = None) -> int:
    return caption_corpus_main(argv, prog=Path(__file__).name)


if __name__ == "__main__":
    sys.exit(main())
