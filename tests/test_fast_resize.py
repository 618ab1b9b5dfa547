"""read_video_pixels (decode + transform in one pass, converting only the crop's pixels) is bit-exact with
read_video followed by preprocess_frames: the documented transforms (Pillow-exact NEAREST resize + crop, bilinear
squash), on the repo's real clips and on generated files of odd sizes and other 4:2:0 pixel formats."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from modeling_tvtsv2.video_reading_tvtsv2 import read_video, read_video_pixels
from modeling_tvtsv2.video_transforms_tvtsv2 import (
    _pil_nearest_indices,
    _short_side_size,
    _yuv420_pixels_to_rgb,
    preprocess_frames,
)


DATA = Path(__file__).resolve().parent / "data"


def _write(path: Path, width: int, height: int, codec: str, pix_fmt: str, frames: int = 8) -> Path:
    rng = np.random.default_rng(width * 1000 + height)
    with av.open(str(path), "w") as output:
        stream = output.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(frames):
            # Noise: every pixel differs from its neighbours, so any off-by-one in rows, columns or chroma shows.
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return path


GENERATED = [
    (333, 271, "ffv1", "yuv420p", "mkv"),  # odd both ways (converted in full, then gathered)
    (271, 334, "ffv1", "yuv420p", "mkv"),  # portrait, odd width
    (300, 250, "mjpeg", "yuvj420p", "avi"),  # full-range 4:2:0
    (1002, 642, "ffv1", "yuv420p", "mkv"),  # even and large: only the crop's pixels are converted
    (230, 230, "ffv1", "yuv420p", "mkv"),  # upscaled square
    (320, 240, "ffv1", "yuv444p", "mkv"),  # not 4:2:0: converted in full
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fast_resize")
    generated = [_write(folder / f"v{w}x{h}.{ext}", w, h, codec, pix) for w, h, codec, pix, ext in GENERATED]
    return [DATA / "obama_speech.mp4", DATA / "park.mp4", *generated]


@pytest.mark.parametrize("transform", ["eval", "train", "extract"])
def test_read_video_pixels_is_bit_exact_with_read_then_preprocess(videos, transform):
    for path in videos:
        for num_frames in (5, 30):  # 30: short clips repeat frames
            fast_rng, slow_rng = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
            pixels, meta = read_video_pixels(path, num_frames, "random", generator=fast_rng, transform=transform)
            frames, slow_meta = read_video(path, num_frames, "random", generator=slow_rng)
            expected = preprocess_frames(frames, transform, generator=slow_rng)
            assert torch.equal(pixels, expected), (path.name, transform, num_frames)
            assert meta.frames_indices == slow_meta.frames_indices
            assert (meta.width, meta.height) == (slow_meta.width, slow_meta.height)
            # The generators were drawn the same number of times: later draws agree too.
            assert torch.equal(torch.rand(3, generator=fast_rng), torch.rand(3, generator=slow_rng))


def test_window_reads_and_decoded_arrays_match(videos):
    pixels, _ = read_video_pixels(DATA / "obama_speech.mp4", 12, start=2.0, end=5.0, transform="eval")
    frames, _ = read_video(DATA / "obama_speech.mp4", 12, start=2.0, end=5.0)
    assert torch.equal(pixels, preprocess_frames(frames, "eval"))
    array = frames.numpy()
    from_array, _ = read_video_pixels(array, 20, transform="eval")
    assert torch.equal(from_array, preprocess_frames(read_video(array, 20)[0], "eval"))


def test_partial_yuv420_conversion_equals_full_conversion_on_real_frames():
    for name in ("obama_speech.mp4", "park.mp4"):
        with av.open(str(DATA / name)) as container:
            for count, frame in enumerate(container.decode(video=0)):
                if count == 3:
                    break
        full = frame.to_ndarray(format="rgb24")
        new_h, new_w = _short_side_size(frame.height, frame.width, 268)
        rows = _pil_nearest_indices(frame.height, new_h).numpy()
        cols = _pil_nearest_indices(frame.width, new_w).numpy()
        assert np.array_equal(_yuv420_pixels_to_rgb(frame, rows, cols), full[rows][:, cols]), name


def _prepared_like(path: Path) -> Path:
    """A 30 fps H.264 file with B-frames nothing refers to and a keyframe every 30 frames (prepare-videos' layout)."""
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 192, "yuv420p"
        stream.options = {"preset": "veryfast", "g": "30", "bf": "3", "b-pyramid": "none"}
        for i in range(90):
            image = np.repeat(np.repeat(np.roll(coarse, i // 3, axis=1), 16, axis=0), 16, axis=1)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return path


def test_skipping_unreferenced_frames_changes_no_decoded_picture(tmp_path, monkeypatch):
    import modeling_tvtsv2.video_decoding_tvtsv2 as video_decoding  # where the decoder looks the codec set up

    for path in (DATA / "obama_speech.mp4", _prepared_like(tmp_path / "prepared_like.mp4")):
        with av.open(str(path)) as container:  # ground truth: every frame, decoded in order, nothing skipped
            every = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        reads = {}
        for skipping in (True, False):
            if not skipping:
                monkeypatch.setattr(video_decoding, "_SKIP_NONREF_CODECS", frozenset())
            frames, meta = read_video(path, 12, "random", generator=torch.Generator().manual_seed(5))
            assert np.array_equal(frames.numpy(), every[meta.frames_indices]), (path.name, skipping)
            reads[skipping] = meta.decoded_frames
            monkeypatch.undo()
        assert reads[True] < reads[False], (path.name, reads)  # B-frames on the way were skipped
