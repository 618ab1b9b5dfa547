"""Bounded time and memory of video reads (issue 10 item 7).

Requests past the limits are refused with a ValueError before anything big is allocated or decoded; repeated
frames are repeated after the transform, so a huge source costs about one decoded frame plus the output.
The risky calls run in a child process with a time limit and a cap on its address space, so that a regression
fails the test (MemoryError / timeout) instead of hanging or taking the machine's memory.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from modeling_tvtsv2.video_reading_tvtsv2 import DEFAULT_MAX_FRAMES, read_video, read_video_pixels
from modeling_tvtsv2.video_transforms_tvtsv2 import preprocess_frames

from conftest import HANG_GUARD_SECONDS


REPO = Path(__file__).resolve().parent.parent
OBAMA = REPO / "tests" / "data" / "obama_speech.mp4"  # 320x240, 105 frames


def run_child(code: str, extra_address_space_gib: float = 2.0) -> str:
    """Run ``code`` in a fresh Python after the imports it needs, with the address space capped at what the
    imports took plus ``extra_address_space_gib``; returns stdout (the child prints its verdict)."""
    prelude = textwrap.dedent(
        f"""
        import resource, sys
        import torch, av, numpy as np
        from modeling_tvtsv2.video_reading_tvtsv2 import read_video, read_video_pixels
        with open("/proc/self/statm") as handle:
            used = int(handle.read().split()[0]) * resource.getpagesize()
        cap = used + int({extra_address_space_gib} * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_oversized_requests_are_refused_before_allocating_or_enumerating():
    # num_frames=100000 of 320x240 would be 21.5 GiB (the child's address space is capped at +2 GiB: a regression
    # is a MemoryError); fps=1e7 over an 8.8 s clip implies 88 million positions (a regression runs for minutes:
    # the child's time limit fails the test).
    out = run_child(
        f"""
        for kwargs in ({{"num_frames": 100000}}, {{"num_frames": None, "fps": 1e7}}):
            try:
                read_video({str(OBAMA)!r}, **kwargs)
            except ValueError as error:
                print("VALUE_ERROR", error)
        """,
    )
    lines = out.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("VALUE_ERROR") for line in lines), out
    assert "num_frames=100000" in lines[0] and "max_frames" in lines[0]
    assert "fps=10000000.0" in lines[1] and "max_frames" in lines[1]


def test_limits_are_configurable():
    with pytest.raises(ValueError, match="max_frames=10"):
        read_video(OBAMA, num_frames=11, max_frames=10)
    with pytest.raises(ValueError, match="every frame .* 105 frames, more than max_frames=100"):
        read_video(OBAMA, num_frames=None, max_frames=100)
    with pytest.raises(ValueError, match="max_output_bytes"):
        read_video(OBAMA, num_frames=12, max_output_bytes=12 * 320 * 240 * 3 - 1)
    with pytest.raises(ValueError, match="num_frames=150 is more than max_frames=100"):
        read_video(OBAMA, num_frames=150, max_frames=100)
    frames, meta = read_video(OBAMA, num_frames=150, max_frames=None)  # repeats, allowed without a limit
    assert frames.shape == (150, 240, 320, 3)
    assert meta.decoded_frames <= 110  # every distinct frame decoded once
    assert DEFAULT_MAX_FRAMES >= 1000
    every, _ = read_video(OBAMA, num_frames=None, fps=5.0, max_frames=100)
    assert every.shape[0] == 44  # 105 frames at 11.94 fps = 8.8 s, every 0.2 s


def test_repeats_are_the_distinct_frames_repeated():
    short, meta = read_video(OBAMA, num_frames=None)
    many, meta_many = read_video(OBAMA, num_frames=300)
    assert torch.equal(many, short[meta_many.frames_indices])
    pixels, _ = read_video_pixels(OBAMA, num_frames=300)
    assert torch.equal(pixels, preprocess_frames(many, "eval"))


def _write_two_frame_video(path: Path, width: int, height: int) -> None:
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        coarse = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
        for i in range(2):
            image = np.repeat(np.repeat(np.roll(coarse, i, axis=1), 16, axis=0), 16, axis=1)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            output.mux(stream.encode(frame))
        output.mux(stream.encode())


def test_large_two_frame_video_peak_memory_follows_the_output(tmp_path):
    # 2400x2400: 17 MB per RGB frame. 48 frames materialised at source resolution would add > 800 MB; decoding
    # each distinct frame once and repeating after the transform keeps the peak near one decoded frame. Checked
    # for the crop transforms (train/eval share the path), the squash ("extract") and the training collator.
    path = tmp_path / "large.mp4"
    _write_two_frame_video(path, 2400, 2400)
    out = run_child(
        f"""
        from modeling_tvtsv2.data.collator import TVTSv2PretrainingCollator
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        path = {str(path)!r}
        for transform in ("train", "extract"):
            read_video_pixels(path, num_frames=1, transform=transform)  # warm-up: codecs, one frame
        before = peak()
        for transform in ("train", "extract"):
            pixels, meta = read_video_pixels(path, num_frames=48, transform=transform)
            assert pixels.shape == (48, 3, 224, 224) and meta.decoded_frames <= 4, (pixels.shape, meta.decoded_frames)
        collator = TVTSv2PretrainingCollator(tokenizer=None, num_frames=48, training=True)
        batch_pixels = collator._decode({{"video": path}}, torch.Generator().manual_seed(0))
        assert batch_pixels.shape == (48, 3, 224, 224)
        print("PEAK_GROWTH_MB", (peak() - before) / 2**20)
        """,
        extra_address_space_gib=3.0,
    )
    growth = float(out.split("PEAK_GROWTH_MB")[1])
    assert growth < 250, f"peak memory grew by {growth:.0f} MB for 48-frame reads of a 2400x2400 video"


class _ThreadCounts(torch.utils.data.Dataset):
    """Reports the decoder thread count of a video opened inside a DataLoader worker."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        from modeling_tvtsv2.video_decoding_tvtsv2 import PyAVVideo

        reader = PyAVVideo(str(OBAMA), "obama")
        try:
            return reader.stream.thread_count
        finally:
            reader.close()


def test_decoder_threads_are_shared_among_dataloader_workers():
    import os

    cpus = len(os.sched_getaffinity(0))
    loader = torch.utils.data.DataLoader(_ThreadCounts(), batch_size=None, num_workers=2)
    assert list(loader) == [max(1, cpus // 2)] * 2  # not FFmpeg's "one per CPU" in every worker
    assert _ThreadCounts()[0] == 0  # main process: FFmpeg's automatic count
