#!/usr/bin/env python
"""Build a TVTSv2 transcript corpus (🤗 Dataset on disk) from a folder of videos with transcripts next to them.

Each video ``name.mp4`` needs ``name.json`` (YT-Temporal ASR words), ``name.vtt`` / ``name.<lang>.vtt`` (WebVTT,
YouTube auto-captions included) or ``name.srt``. Unreadable videos, unparsable or empty transcripts are reported
and skipped.

    python processing/prepare_transcript_corpus.py --videos DIR --output OUT [--embed_videos] [--validation_size 0.05]
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import modeling_tvtsv2  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_tvtsv2.data.corpus_builders import transcript_corpus_main


def main(argv: list[str] | None = None) -> int:
    return transcript_corpus_main(argv, prog=Path(__file__).name)


if __name__ == "__main__":
    sys.exit(main())
