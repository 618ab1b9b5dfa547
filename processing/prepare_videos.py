#!/usr/bin/env python
"""Transcode videos into training-ready files: H.264, shorter side 268, at most 10 fps with every frame a keyframe,
no audio, timestamps preserved (same as ``tvtsv2 prepare-videos``; see ``modeling_tvtsv2/data/prepare_videos.py``).

    python processing/prepare_videos.py --input DIR|CORPUS --output OUT [--num_workers 8] [--overwrite]
    # every frame, a keyframe every second (the previous defaults; smaller files, slower to sample):
    python processing/prepare_videos.py --input DIR --output OUT --max_fps none --keyframe_seconds 1
    python processing/prepare_videos.py settings.yaml --input DIR    # arguments from a file, flags win
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import modeling_tvtsv2  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_tvtsv2.data.prepare_videos import main as _prepare_videos_main


def main(argv: list[str] | None = None) -> int:
    return _prepare_videos_main(argv, prog=Path(__file__).name)


if __name__ == "__main__":
    sys.exit(main())
