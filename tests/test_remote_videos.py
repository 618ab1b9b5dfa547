"""Remote videos (issue 18, item 2): a row's ``video`` may be a URL fsspec opens; it is read with range requests,
a timeout, bounded retries and a byte limit, and fails like a broken local file.

A real HTTP server on loopback (``tests/loopback_http.py``, honours ``Range``) serves real video files written with
PyAV and the real test clips; the expected frames are the local file's, decoded by the same reader from disk.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from loopback_http import serve_folder
from modeling_tvtsv2.data.collator import TVTSv2PretrainingCollator
from modeling_tvtsv2.data.schema import video_source
from modeling_tvtsv2.video_decoding_tvtsv2 import VideoDecodeError, VideoFileNotFoundError, probe_video
from modeling_tvtsv2.video_reading_tvtsv2 import read_video, read_video_pixels

DATA = Path(__file__).parent / "data"


def make_ramp(path: Path, frames: int = 40, fps: int = 5, size: int = 32) -> Path:
    """Grey ramp, frame i of n at grey level 255 * i / (n - 1) (MPEG-4 part 2, what the demo corpus uses)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps, 1))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            array = np.full((size, size, 3), round(255 * i / (frames - 1)), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    make_ramp(root / "ramp.mp4")
    shutil.copy(DATA / "obama_speech.mp4", root / "obama_speech.mp4")
    (root / "videos").mkdir()
    shutil.copy(root / "ramp.mp4", root / "videos" / "ramp.mp4")
    with serve_folder(root, stall_seconds=3.0) as server:
        yield root, server


@pytest.fixture
def quick_limits(monkeypatch):
    """Short timeout, one retry: failing reads cost about a second."""
    monkeypatch.setenv("TVTSV2_REMOTE_TIMEOUT", "0.3")
    monkeypatch.setenv("TVTSV2_REMOTE_RETRIES", "1")


def test_video_source_keeps_urls_and_joins_url_roots():
    assert video_source({"bytes": None, "path": "https://host/a.mp4"}) == "https://host/a.mp4"
    assert video_source("hf://datasets/org/name/clips/a.mp4", "/ignored") == "hf://datasets/org/name/clips/a.mp4"
    assert video_source("s3://bucket/a.mp4") == "s3://bucket/a.mp4"
    assert video_source("clips/a.mp4", "https://host/videos/") == "https://host/videos/clips/a.mp4"
    assert video_source("clips/a.mp4", "/data") == str(Path("/data/clips/a.mp4"))
    assert video_source({"bytes": b"xyz", "path": "https://host/a.mp4"}) == b"xyz"  # embedded bytes win


@pytest.mark.parametrize("name", ["ramp.mp4", "obama_speech.mp4"])
def test_served_video_decodes_exactly_like_the_local_file(served, name, monkeypatch):
    root, server = served
    monkeypatch.setenv("TVTSV2_REMOTE_BLOCK_SIZE", "8192")  # several range requests even for small files
    server.requests.clear()
    url = f"{server.url}/{name}"
    for kwargs in (dict(num_frames=8), dict(num_frames=4, start=2.0, end=5.0, sampling="linspace")):
        local, local_meta = read_video(str(root / name), **kwargs)
        remote, remote_meta = read_video(url, **kwargs)
        assert torch.equal(local, remote)
        assert local_meta.frames_indices == remote_meta.frames_indices
    generator = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    local_pixels, _ = read_video_pixels(str(root / name), num_frames=4, sampling="random", generator=generator(),
                                        transform="train", image_size=24)  # fmt: skip
    remote_pixels, _ = read_video_pixels(url, num_frames=4, sampling="random", generator=generator(),
                                         transform="train", image_size=24)  # fmt: skip
    assert torch.equal(local_pixels, remote_pixels)
    assert probe_video(url).duration == probe_video(str(root / name)).duration
    ranges = [r for method, path, r in server.requests if method == "GET" and path == f"/{name}"]
    assert ranges and all(r is not None and r.startswith("bytes=") for r in ranges)  # only range requests


def test_missing_stalled_and_oversized_urls_fail_like_broken_files(served, quick_limits, monkeypatch):
    root, server = served
    size = (root / "obama_speech.mp4").stat().st_size
    with pytest.raises(VideoFileNotFoundError) as missing:
        read_video(f"{server.url}/nothing-here.mp4", num_frames=2)
    assert str(missing.value) == f"cannot read video {server.url}/nothing-here.mp4: no such file"

    with pytest.raises(VideoDecodeError) as stalled:
        read_video(f"{server.url}/stall/ramp.mp4", num_frames=2)
    message = str(stalled.value)
    assert message.startswith(f"cannot read video {server.url}/stall/ramp.mp4: ") and "\n" not in message
    assert "after 2 tries" in message and "timed out" in message

    monkeypatch.setenv("TVTSV2_REMOTE_MAX_BYTES", str(size - 1))
    server.requests.clear()
    with pytest.raises(VideoDecodeError) as too_big:
        read_video(f"{server.url}/obama_speech.mp4", num_frames=2)
    assert str(too_big.value) == (
        f"cannot read video {server.url}/obama_speech.mp4: {size} bytes, more than the limit of {size - 1} bytes "
        "(TVTSV2_REMOTE_MAX_BYTES; 0: no limit)"
    )
    assert not [request for request in server.requests if request[0] == "GET"]  # refused before any byte was read


def test_bad_remote_videos_are_skipped_and_counted(served, quick_limits, monkeypatch):
    """The collator's skip-and-count path (training and evaluation decode through the same `_decode`)."""
    from modeling_tvtsv2.tokenization_tvtsv2 import build_clip_tokenizer

    root, server = served
    monkeypatch.setenv("TVTSV2_REMOTE_MAX_BYTES", str((root / "ramp.mp4").stat().st_size))  # obama is larger
    segments = [{"start": 0.5 + 2 * i, "end": 1.5 + 2 * i, "text": f"word {i}"} for i in range(4)]

    def row(path: str, video_id: str) -> dict:
        return {"video": {"bytes": None, "path": path}, "video_id": video_id, "duration": 8.0, "segments": segments}

    rows = [
        row("videos/ramp.mp4", "relative-to-url-root"),
        row(f"{server.url}/missing.mp4", "missing"),
        row(f"{server.url}/stall/ramp.mp4", "stalled"),
        row(f"{server.url}/obama_speech.mp4", "too-big"),
    ]
    collator = TVTSv2PretrainingCollator(build_clip_tokenizer(), num_frames=3, image_size=32, patch_size=8,
                                         training=True, video_root=server.url)  # fmt: skip
    batch = collator(rows)
    assert batch["pixel_values_videos"].shape[0] == 1 and batch["num_skipped"].tolist() == [3]
    assert collator.skip_counter.as_dict() == {"decode_error": 3}
