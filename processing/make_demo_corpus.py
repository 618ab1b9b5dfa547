#!/usr/bin/env python
"""Generate (or reuse) the TVTSv2 demo corpus: short synthetic videos of coloured shapes with timed transcripts
(four scenes per clip) and a caption variant, saved as 🤗 Datasets.

    python processing/make_demo_corpus.py --output demo_corpus [--num_videos 240] [--seed 0]
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import modeling_tvtsv2  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_tvtsv2.data.demo_corpus import main as _demo_corpus_main


def main(argv: list[str] | None = None) -> int:
    return _demo_corpus_main(argv, prog=Path(__file__).name)


if __name__ == "__main__":
    sys.exit(main())
