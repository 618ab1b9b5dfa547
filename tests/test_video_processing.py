"""Video decoding, frame sampling and transforms (`modeling_tvtsv2.video_*_tvtsv2`).

Generated test videos carry their frame number as 10 black/white blocks in the top half of every frame, so a
test can tell from the pixels which source frame the reader returned, independently of the reader's metadata.
References are independent: the original sampling formulas written out here, plain PyAV decode loops, and Pillow
for the resize (test-only dependency).
"""

import fractions
import re
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from modeling_tvtsv2.video_decoding_tvtsv2 import VideoDecodeError, VideoFileNotFoundError
from modeling_tvtsv2.video_processing_tvtsv2 import TVTSv2VideoProcessor
from modeling_tvtsv2.video_reading_tvtsv2 import read_video, sample_frame_indices
from modeling_tvtsv2.video_transforms_tvtsv2 import preprocess_frames


DATA = Path(__file__).parent / "data"
OBAMA = DATA / "obama_speech.mp4"  # audio stream first, 105 frames
PARK = DATA / "park.mp4"  # header: 18 frames; 17 are presented and decode
HANG_GUARD_S = 30.0  # not a performance assertion: anything slower than this is a hang
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

W, H, BITS = 160, 120, 10


# ---------------------------------------------------------------------------------------------------------------
# Generated media
# ---------------------------------------------------------------------------------------------------------------


def frame_image(index: int, width: int = W, height: int = H) -> np.ndarray:
    image = np.full((height, width, 3), 128, np.uint8)
    block = width // BITS
    for bit in range(BITS):
        image[: height // 2, bit * block : (bit + 1) * block] = 255 if (index >> bit) & 1 else 0
    image[height // 2 :, :, 0] = (np.arange(width) * 3 + index * 5) % 256  # texture that changes every frame
    return image


def frame_number(image: np.ndarray) -> int:
    height, width = image.shape[:2]
    block = width // BITS
    value = 0
    for bit in range(BITS):
        if image[: height // 2, bit * block + 2 : (bit + 1) * block - 2].mean() > 128:
            value |= 1 << bit
    return value


def frame_numbers(frames: torch.Tensor) -> list[int]:
    return [frame_number(f) for f in frames.numpy()]


def encoder_available(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # noqa: BLE001
        return False
    return True


def make_video(
    path: Path,
    num_frames: int = 30,
    codec: str = "libx264",
    rate: int = 25,
    times: list[float] | None = None,
    audio_first: bool = False,
    container_format: str | None = None,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Frame i shows number i and is presented at i / rate (or times[i] for variable frame rate)."""
    output = av.open(str(path), "w", format=container_format, options=container_options or {})
    audio = None
    if audio_first:
        audio = output.add_stream("aac", rate=16000)
        audio.layout = "mono"
    stream = output.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.options = dict(options or {})
    if times is not None:
        stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, 1000)
    for i in range(num_frames):
        frame = av.VideoFrame.from_ndarray(frame_image(i), format="rgb24")
        if times is not None:
            frame.pts, frame.time_base = int(round(times[i] * 1000)), stream.time_base
        else:
            frame.pts = i
        output.mux(stream.encode(frame))
    output.mux(stream.encode())
    if audio is not None:
        samples = int(16000 * num_frames / rate)
        for first in range(0, samples, 1024):
            chunk = np.zeros((1, min(1024, samples - first)), np.float32)
            audio_frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            audio_frame.sample_rate, audio_frame.pts = 16000, first
            output.mux(audio.encode(audio_frame))
        output.mux(audio.encode())
    output.close()
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    """Independent reference: every frame, in order, from a plain PyAV loop."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def bounded(fn, *args, **kwargs):
    start = time.monotonic()
    result = fn(*args, **kwargs)
    assert time.monotonic() - start < HANG_GUARD_S
    return result


def original_uniform(n: int, t: int) -> list[int]:
    """The original evaluation sampling, written out from the original code's description."""
    edges = np.linspace(start=0, stop=n, num=t + 1).astype(int)
    return [int((edges[i] + edges[i + 1] - 1) // 2) for i in range(t)]


def original_linspace(n: int, t: int) -> list[int]:
    return np.linspace(0, n - 1, t).astype(int).tolist()


GENERATED = {
    # name: make_video kwargs
    "h264_bframes.mp4": dict(codec="libx264", options={"g": "12", "bf": "3"}),
    "h264.mkv": dict(codec="libx264", options={"g": "12", "bf": "2"}),
    "mpeg4.avi": dict(codec="mpeg4", options={"g": "10"}),
    "mpeg4_bframes.mp4": dict(codec="mpeg4", options={"g": "10", "bf": "2"}),
    "vp9.webm": dict(codec="libvpx-vp9", options={"g": "10"}),
    "audio_first.mp4": dict(codec="libx264", audio_first=True, options={"g": "12"}),
    "h264.ts": dict(codec="libx264", container_format="mpegts", options={"g": "12", "bf": "2"}),
    "raw.h264": dict(codec="libx264", container_format="h264", options={"g": "10", "bf": "2"}),  # no timestamps
}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    for name, kwargs in GENERATED.items():
        if encoder_available(kwargs["codec"]):
            make_video(folder / name, num_frames=30, **kwargs)
    return folder


def generated(media: Path, name: str) -> Path:
    path = media / name
    if not path.exists():
        pytest.skip(f"encoder for {name} not available in this PyAV build")
    return path


# ---------------------------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------------------------


def test_uniform_matches_original_formula():
    # hand-checked: 105 frames (obama_speech.mp4), 12 segments
    assert sample_frame_indices(105, 12, "uniform") == [3, 12, 21, 30, 38, 47, 56, 65, 73, 82, 91, 100]
    # 17 frames (park.mp4): differs from what the header's 18 would give
    assert sample_frame_indices(17, 12, "uniform") == [0, 1, 2, 4, 5, 7, 8, 9, 11, 12, 14, 15]
    for n in (12, 13, 17, 18, 29, 100, 101, 1000, 4321):
        for t in (1, 4, 8, 12, 16):
            if n >= t:
                assert sample_frame_indices(n, t, "uniform") == original_uniform(n, t), (n, t)


def test_linspace_matches_original_formula():
    assert sample_frame_indices(105, 12, "linspace") == [0, 9, 18, 28, 37, 47, 56, 66, 75, 85, 94, 104]
    for n in (1, 5, 12, 17, 100, 999):
        assert sample_frame_indices(n, 12, "linspace") == original_linspace(n, 12)


def test_random_draws_one_frame_per_segment():
    n, t = 24, 12  # two-frame segments
    seen = [set() for _ in range(t)]
    for seed in range(40):
        draw = sample_frame_indices(n, t, "random", torch.Generator().manual_seed(seed))
        for i, index in enumerate(draw):
            assert 2 * i <= index <= 2 * i + 1
            seen[i].add(index)
    assert all(s == {2 * i, 2 * i + 1} for i, s in enumerate(seen))  # both frames of a segment can be drawn
    a = sample_frame_indices(1000, 12, "random", torch.Generator().manual_seed(3))
    b = sample_frame_indices(1000, 12, "random", torch.Generator().manual_seed(3))
    c = sample_frame_indices(1000, 12, "random", torch.Generator().manual_seed(4))
    assert a == b and a != c


def test_short_video_policy_repeats_frames():
    # 5 frames, 12 wanted: the frame on screen at the middle of each of 12 equal segments of [0, 5)
    assert sample_frame_indices(5, 12, "uniform") == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4]
    assert sample_frame_indices(5, 12, "linspace") == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4]
    assert sample_frame_indices(1, 12, "uniform") == [0] * 12
    draw = sample_frame_indices(5, 12, "random", torch.Generator().manual_seed(0))
    assert draw == sorted(draw) and set(draw) <= set(range(5)) and len(draw) == 12
    with pytest.raises(ValueError):
        sample_frame_indices(0, 12)
    with pytest.raises(ValueError):
        sample_frame_indices(10, 12, "middle")


# ---------------------------------------------------------------------------------------------------------------
# Real media
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [OBAMA, PARK], ids=["obama_speech", "park"])
@pytest.mark.parametrize("sampling", ["uniform", "linspace", "random"])
def test_real_media_every_strategy(path, sampling):
    reference = decode_all(path)
    frames, meta = bounded(read_video, path, 12, sampling, generator=torch.Generator().manual_seed(0))
    assert frames.dtype == torch.uint8 and frames.shape == (12, *reference[0].shape)
    assert meta.total_num_frames == len(reference)
    assert len(meta.frames_indices) == 12 and len(meta.timestamps) == 12
    for k, index in enumerate(meta.frames_indices):
        assert np.array_equal(frames[k].numpy(), reference[index])
    with av.open(str(path)) as container:
        duration = container.duration / 1e6
    assert all(0.0 <= t < duration for t in meta.timestamps)
    assert meta.timestamps == sorted(meta.timestamps)
    if sampling == "uniform":
        assert meta.frames_indices == original_uniform(len(reference), 12)
    if sampling == "linspace":
        assert meta.frames_indices == original_linspace(len(reference), 12)


def test_park_uses_the_17_frames_that_decode():
    with av.open(str(PARK)) as container:
        assert container.streams.video[0].frames == 18  # what the header claims
    assert len(decode_all(PARK)) == 17
    frames, meta = read_video(PARK, 12, "linspace")
    assert meta.total_num_frames == 17
    assert meta.frames_indices == original_linspace(17, 12)  # ends at frame 16, not 17
    assert meta.timestamps[-1] == pytest.approx(16 * 1001 / 30000)
    _, meta = read_video(PARK, 12, "uniform")
    assert meta.frames_indices == [0, 1, 2, 4, 5, 7, 8, 9, 11, 12, 14, 15]


def test_obama_audio_first_metadata():
    frames, meta = read_video(OBAMA, 12)
    assert meta.total_num_frames == 105
    assert meta.timestamps[0] == pytest.approx(3 / 12)  # frame 3, frames every 50/600 s
    assert meta.fps == pytest.approx(12.0)
    assert (meta.width, meta.height) == (320, 240)
    assert 8.6 < meta.duration < 8.8


def test_inputs_bytes_file_object_and_arrays():
    from_path, meta_path = read_video(OBAMA, 6)
    from_bytes, _ = read_video(OBAMA.read_bytes(), 6)
    with open(OBAMA, "rb") as handle:
        from_file, _ = read_video(handle, 6)
        assert not handle.closed  # the caller's file stays open
    assert torch.equal(from_path, from_bytes) and torch.equal(from_path, from_file)
    array = np.stack(decode_all(PARK))
    from_array, meta = read_video(array, 12, "uniform")
    assert meta.total_num_frames == 17 and meta.decoded_frames == 0
    assert torch.equal(from_array, torch.from_numpy(array[[0, 1, 2, 4, 5, 7, 8, 9, 11, 12, 14, 15]]))
    from_list, _ = read_video(list(array), 12, "uniform")
    assert torch.equal(from_list, from_array)
    # channels-first tensors are accepted too
    from_chw, _ = read_video(torch.from_numpy(array).permute(0, 3, 1, 2), 12)
    assert torch.equal(from_chw, from_array)
    # a window on decoded frames needs their frame rate
    with pytest.raises(ValueError, match="source_fps"):
        read_video(array, 4, start=0.1)
    windowed, meta = read_video(array, 4, start=0.1, end=0.3, source_fps=30000 / 1001)
    assert meta.timestamps[0] >= 0.1 - 1e-9 and meta.timestamps[-1] < 0.3
    with pytest.raises(ValueError, match="uint8"):
        read_video(array.astype(np.float32) / 255, 4)


# ---------------------------------------------------------------------------------------------------------------
# Generated media: codecs, containers, VFR, audio first, damaged files
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(GENERATED))
@pytest.mark.parametrize("sampling", ["uniform", "linspace", "random"])
def test_generated_codecs_and_containers(media, name, sampling):
    path = generated(media, name)
    frames, meta = bounded(read_video, path, 12, sampling, generator=torch.Generator().manual_seed(1))
    assert frames.shape == (12, H, W, 3)
    assert meta.total_num_frames == 30
    assert frame_numbers(frames) == meta.frames_indices  # the pixels are the frames the metadata names
    assert meta.timestamps == pytest.approx([i / 25 for i in meta.frames_indices], abs=1e-3)
    if sampling == "uniform":
        assert meta.frames_indices == original_uniform(30, 12)


def test_vp9_webm_has_no_frame_count_in_header(media):
    path = generated(media, "vp9.webm")
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0
    _, meta = read_video(path, 12, "linspace")
    assert meta.total_num_frames == 30 and meta.frames_indices[-1] == 29


def test_audio_first_and_nonzero_start_time(media):
    path = generated(media, "audio_first.mp4")
    with av.open(str(path)) as container:
        assert container.streams[0].type == "audio"
    frames, meta = read_video(path, 12)
    assert frame_numbers(frames) == meta.frames_indices
    ts = generated(media, "h264.ts")
    with av.open(str(ts)) as container:
        assert container.start_time > 0  # MPEG-TS timestamps do not start at 0
    frames, meta = read_video(ts, 12, "linspace")
    assert meta.timestamps[0] == pytest.approx(0.0, abs=1e-6)  # times are on the player's timeline
    frames, meta = read_video(ts, 4, start=0.5, end=0.9)
    assert frame_numbers(frames) == [13, 16, 18, 21]


def test_variable_frame_rate(tmp_path):
    times = [0.0, 0.04, 0.08, 0.5, 0.52, 0.54, 1.5, 1.55, 1.6, 1.65, 2.9, 3.0] + [3.0 + 0.1 * k for k in range(1, 19)]
    path = make_video(tmp_path / "vfr.mp4", num_frames=30, times=times, options={"bf": "0"})
    frames, meta = read_video(path, 12, "uniform")
    assert frame_numbers(frames) == original_uniform(30, 12)
    assert meta.timestamps == pytest.approx([times[i] for i in meta.frames_indices], abs=1e-3)
    # fixed-rate sampling picks the frame on screen at each time, not every k-th frame
    frames, meta = read_video(path, 8, fps=5.0)
    on_screen = [max(i for i, t in enumerate(times) if t <= k / 5 + 1e-9) for k in range(8)]
    assert on_screen == [0, 2, 2, 5, 5, 5, 5, 5]
    assert frame_numbers(frames) == on_screen


def test_fixed_fps_sampling(media):
    path = generated(media, "h264_bframes.mp4")
    frames, meta = read_video(path, None, fps=5.0)  # every 0.2 s of a 1.2 s clip
    assert frame_numbers(frames) == [0, 5, 10, 15, 20, 25]
    frames, meta = read_video(path, 4, fps=10.0, start=0.4)
    assert frame_numbers(frames) == [10, 12, 15, 17]  # t = 0.4, 0.5, 0.6, 0.7 at 25 fps
    frames, _ = read_video(path, 4, fps=2.0, start=1.0)  # runs past the end: the last frame repeats
    assert frame_numbers(frames) == [25, 29, 29, 29]


def test_window_and_short_window(media):
    path = generated(media, "h264_bframes.mp4")
    frames, meta = read_video(path, 4, "uniform", start=0.5, end=0.9)  # frames 13..22 start inside
    assert meta.total_num_frames == 10
    assert frame_numbers(frames) == [13 + i for i in original_uniform(10, 4)]
    assert meta.window == (0.5, 0.9)
    frames, meta = read_video(path, 6, "uniform", start=0.5, end=0.56)  # only frame 13 (0.52) starts inside
    assert frame_numbers(frames) == [13] * 6
    frames, meta = read_video(path, 3, "uniform", start=0.53, end=0.55)  # no frame starts inside: on screen
    assert frame_numbers(frames) == [13] * 3
    with pytest.raises(ValueError, match="after the end"):
        read_video(path, 4, start=5.0)
    with pytest.raises(ValueError):
        read_video(path, 4, start=0.8, end=0.2)


def test_window_in_long_file_does_not_decode_the_start(tmp_path):
    path = make_video(tmp_path / "long.mp4", num_frames=1000, rate=25, options={"g": "25", "preset": "ultrafast"})
    frames, meta = bounded(read_video, path, 8, "uniform", start=30.0, end=32.0)
    assert frame_numbers(frames) == [750 + i for i in original_uniform(50, 8)]
    assert meta.timestamps[0] >= 30.0 and meta.timestamps[-1] < 32.0
    # 50 frames in the window, keyframes every 25: at most a GOP before it is decoded, never the first 30 s
    assert meta.decoded_frames <= 50 + 25
    _, whole = read_video(path, 8, "uniform")
    assert whole.total_num_frames == 1000
    assert whole.decoded_frames < 1000  # stops after the last needed frame and seeks over keyframe gaps


def test_max_decode_frames_bounds_the_work(media):
    path = generated(media, "h264_bframes.mp4")
    with pytest.raises(VideoDecodeError, match="max_decode_frames"):
        read_video(path, 12, "linspace", max_decode_frames=5)


def test_truncated_files_give_the_frames_that_decode(media, tmp_path):
    source = make_video(tmp_path / "whole.mkv", num_frames=60, options={"g": "10"})
    data = source.read_bytes()
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(data[: int(len(data) * 0.6)])
    frames, meta = bounded(read_video, truncated, 12, "linspace")
    numbers = frame_numbers(frames)
    assert 10 < meta.total_num_frames < 60
    assert numbers == meta.frames_indices  # frames that decode, identified correctly
    assert numbers[-1] == meta.total_num_frames - 1

    # MP4 with the index first (faststart): the header lists all 60 frames, the data holds fewer
    faststart = make_video(
        tmp_path / "faststart.mp4", num_frames=60, options={"g": "10"}, container_options={"movflags": "faststart"}
    )
    cut = tmp_path / "faststart_cut.mp4"
    cut.write_bytes(faststart.read_bytes()[: int(faststart.stat().st_size * 0.6)])
    frames, meta = bounded(read_video, cut, 12, "linspace")
    assert meta.total_num_frames < 60
    assert frame_numbers(frames) == meta.frames_indices

    # MP4 with the index at the end: cutting it off leaves nothing readable -> a clear error
    plain = make_video(tmp_path / "plain.mp4", num_frames=60, options={"g": "10"})
    cut_plain = tmp_path / "plain_cut.mp4"
    cut_plain.write_bytes(plain.read_bytes()[: int(plain.stat().st_size * 0.6)])
    with pytest.raises(VideoDecodeError, match="plain_cut.mp4"):
        bounded(read_video, cut_plain, 12)


def test_corrupt_middle_gives_clean_frames_in_order(tmp_path):
    source = make_video(
        tmp_path / "whole.mp4", num_frames=60, options={"g": "10"}, container_options={"movflags": "faststart"}
    )
    data = bytearray(source.read_bytes())
    rng = np.random.default_rng(0)
    lo, hi = int(len(data) * 0.4), int(len(data) * 0.5)
    data[lo:hi] = rng.integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    frames, meta = bounded(read_video, damaged, 12, "uniform")
    numbers = frame_numbers(frames)
    assert frames.shape == (12, H, W, 3)
    assert numbers == sorted(set(numbers))  # distinct source frames in temporal order, no concealment garbage
    assert meta.total_num_frames < 60


def test_unreadable_inputs_raise_clear_errors(tmp_path, media):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    cases = [(empty, "empty"), (text, "notes.mp4")]
    for path, needle in cases:
        with pytest.raises(VideoDecodeError, match=needle) as info:
            bounded(read_video, path, 12)
        assert isinstance(info.value, ValueError) and str(path) in str(info.value)
    with pytest.raises(VideoFileNotFoundError) as info:
        read_video(tmp_path / "missing.mp4")
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)
    with pytest.raises(VideoDecodeError, match="empty"):
        read_video(b"")
    with pytest.raises(VideoDecodeError):
        read_video(b"\x00\x01garbage" * 100)
    # an audio-only file
    audio = tmp_path / "speech.m4a"
    output = av.open(str(audio), "w")
    stream = output.add_stream("aac", rate=16000)
    stream.layout = "mono"
    chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    chunk.sample_rate, chunk.pts = 16000, 0
    output.mux(stream.encode(chunk))
    output.mux(stream.encode())
    output.close()
    with pytest.raises(VideoDecodeError, match="no video stream"):
        read_video(audio)


# ---------------------------------------------------------------------------------------------------------------
# Transforms: parity with Pillow (the original ran torchvision transforms on PIL images)
# ---------------------------------------------------------------------------------------------------------------

SIZES = [(240, 320), (480, 640), (97, 203), (203, 97), (720, 1280), (300, 300), (268, 300), (269, 500), (1000, 999),
         (50, 50), (271, 480), (1080, 1920)]  # fmt: skip


def pil_eval_reference(frame: np.ndarray, size: int = 224) -> np.ndarray:
    """torchvision Resize(int(1.2 S), NEAREST) + CenterCrop(S) on a PIL image, as uint8 [S, S, 3]."""
    image_module = pytest.importorskip("PIL.Image")
    height, width = frame.shape[:2]
    short = int(size * 1.2)
    if width <= height:
        new_w, new_h = short, int(short * height / width)
    else:
        new_w, new_h = int(short * width / height), short
    image = image_module.fromarray(frame).resize((new_w, new_h), image_module.NEAREST)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return np.asarray(image.crop((left, top, left + size, top + size)))


def normalise(pixels: np.ndarray) -> torch.Tensor:
    """ToTensor (x / 255) + Normalize(ImageNet) in float32, [S, S, 3] uint8 -> [3, S, S]."""
    return torch.from_numpy((pixels.astype(np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD).permute(2, 0, 1)


@pytest.mark.parametrize("height, width", SIZES)
def test_eval_transform_equals_pillow_exactly(height, width):
    pytest.importorskip("PIL")
    frames = np.random.default_rng(height * 7 + width).integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    output = preprocess_frames(torch.from_numpy(frames), mode="eval")
    assert output.shape == (2, 3, 224, 224) and output.dtype == torch.float32
    for t in range(2):
        assert torch.equal(output[t], normalise(pil_eval_reference(frames[t])))


def test_eval_transform_scales_with_image_size():
    pytest.importorskip("PIL")
    frames = np.random.default_rng(0).integers(0, 256, (1, 250, 333, 3), dtype=np.uint8)
    output = preprocess_frames(torch.from_numpy(frames), mode="eval", image_size=112)
    assert output.shape == (1, 3, 112, 112)
    assert torch.equal(output[0], normalise(pil_eval_reference(frames[0], size=112)))


def test_train_transform_is_one_random_crop_for_all_frames():
    pytest.importorskip("PIL")
    frames = np.random.default_rng(1).integers(0, 256, (3, 300, 400, 3), dtype=np.uint8)
    output = preprocess_frames(torch.from_numpy(frames), mode="train", generator=torch.Generator().manual_seed(5))
    # torchvision RandomCrop.get_params draws top, then left, with torch.randint
    reference_generator = torch.Generator().manual_seed(5)
    resized_h, resized_w = 268, int(268 * 400 / 300)
    top = int(torch.randint(0, resized_h - 224 + 1, (1,), generator=reference_generator))
    left = int(torch.randint(0, resized_w - 224 + 1, (1,), generator=reference_generator))
    image_module = pytest.importorskip("PIL.Image")
    for t in range(3):
        resized = np.asarray(image_module.fromarray(frames[t]).resize((resized_w, resized_h), image_module.NEAREST))
        assert torch.equal(output[t], normalise(resized[top : top + 224, left : left + 224]))
    other = preprocess_frames(torch.from_numpy(frames), mode="train", generator=torch.Generator().manual_seed(6))
    assert not torch.equal(output, other)


@pytest.mark.parametrize("height, width", [(240, 320), (480, 640), (97, 203), (720, 1280), (150, 100)])
def test_extract_transform_matches_pillow_bilinear_within_one_level(height, width):
    image_module = pytest.importorskip("PIL.Image")
    frames = np.random.default_rng(height + width).integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    output = preprocess_frames(torch.from_numpy(frames), mode="extract")
    assert output.shape == (1, 3, 224, 224)
    reference = np.asarray(image_module.fromarray(frames[0]).resize((224, 224), image_module.BILINEAR))
    # back to grey levels: documented difference is at most one level on a small share of values
    levels = ((output[0].permute(1, 2, 0).numpy() * IMAGENET_STD + IMAGENET_MEAN) * 255).round().astype(int)
    difference = np.abs(levels - reference.astype(int))
    assert difference.max() <= 1
    assert (difference == 0).mean() > 0.98


def test_preprocess_rejects_bad_input():
    with pytest.raises(ValueError, match="transform"):
        preprocess_frames(torch.zeros(1, 300, 300, 3, dtype=torch.uint8), mode="bicubic")
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frames(torch.zeros(1, 300, 300, 3), mode="eval")


# ---------------------------------------------------------------------------------------------------------------
# The video processor
# ---------------------------------------------------------------------------------------------------------------


def test_video_processor_batch_of_mixed_inputs(media):
    processor = TVTSv2VideoProcessor(image_size=64, num_frames=6)
    short = np.stack([frame_image(i) for i in range(3)])  # 3 frames: repeated to 6
    batch = [str(OBAMA), PARK.read_bytes(), short, list(np.stack(decode_all(PARK))[:9])]
    output = bounded(processor, batch, return_tensors="pt", return_metadata=True)
    pixels = output["pixel_values_videos"]
    assert pixels.shape == (4, 6, 3, 64, 64) and pixels.dtype == torch.float32
    metadata = output["video_metadata"]
    assert [m.total_num_frames for m in metadata] == [105, 17, 3, 9]
    assert metadata[2].frames_indices == [0, 0, 1, 1, 2, 2]
    # the processor's pixels are the module functions' pixels
    frames, _ = read_video(OBAMA, 6)
    assert torch.equal(pixels[0], preprocess_frames(frames, image_size=64))


def test_video_processor_single_video_and_options():
    processor = TVTSv2VideoProcessor()
    output = processor(str(PARK), return_tensors="pt")
    assert output["pixel_values_videos"].shape == (1, 12, 3, 224, 224)
    output = processor(
        [OBAMA, OBAMA],
        num_frames=4,
        sampling="linspace",
        start=[1.0, None],
        end=[3.0, None],
        transform="extract",
        return_tensors="pt",
        return_metadata=True,
    )
    assert output["pixel_values_videos"].shape == (2, 4, 3, 224, 224)
    first, second = output["video_metadata"]
    assert 1.0 <= first.timestamps[0] and first.timestamps[-1] < 3.0 and first.window == (1.0, 3.0)
    assert second.frames_indices == original_linspace(105, 4)
    # decoded arrays get their frame rate from video_metadata (needed for a time window)
    array = np.stack([frame_image(i) for i in range(30)])
    windowed = processor(
        array, num_frames=4, start=0.5, end=0.9, video_metadata={"fps": 25.0}, return_tensors=None,
        return_metadata=True,
    )  # fmt: skip
    assert windowed["video_metadata"][0].frames_indices == original_uniform(10, 4)
    assert isinstance(windowed["pixel_values_videos"], list) and windowed["pixel_values_videos"][0].shape[0] == 4
    generator = torch.Generator().manual_seed(0)
    train = processor(OBAMA, sampling="random", transform="train", generator=generator, return_tensors="pt")
    assert train["pixel_values_videos"].shape == (1, 12, 3, 224, 224)
    with pytest.raises(ValueError):
        processor(OBAMA, transform="bicubic", return_tensors="pt")
    with pytest.raises(TypeError):  # transformers warns, then its kwargs validation refuses it
        processor(OBAMA, not_an_option=1)


def test_video_processor_save_and_load(tmp_path):
    processor = TVTSv2VideoProcessor(image_size=112, num_frames=8, sampling="linspace", transform="extract")
    processor.save_pretrained(tmp_path)
    reloaded = TVTSv2VideoProcessor.from_pretrained(tmp_path)
    assert (reloaded.num_frames, reloaded.sampling, reloaded.transform) == (8, "linspace", "extract")
    assert reloaded.size.shortest_edge == 134 and (reloaded.crop_size.height, reloaded.crop_size.width) == (112, 112)
    a = processor(str(PARK), return_tensors="pt")["pixel_values_videos"]
    b = reloaded(str(PARK), return_tensors="pt")["pixel_values_videos"]
    assert torch.equal(a, b)


def test_sample_frames_hook():
    from transformers.video_utils import VideoMetadata

    processor = TVTSv2VideoProcessor()
    metadata = VideoMetadata(total_num_frames=105, fps=12.0)
    assert processor.sample_frames(metadata).tolist() == [3, 12, 21, 30, 38, 47, 56, 65, 73, 82, 91, 100]
    assert processor.sample_frames(metadata, num_frames=4, fps=2.0).tolist() == [0, 6, 12, 18]


def test_module_has_no_absolute_project_imports():
    # Flat Hub files: project code only through `from .sibling import X`; `av` optional at import time.
    paths = sorted((Path(__file__).parent.parent / "modeling_tvtsv2").glob("video_*_tvtsv2.py"))
    assert {p.name for p in paths} >= {"video_processing_tvtsv2.py", "video_decoding_tvtsv2.py"}
    importing_av = 0
    for path in paths:
        source = path.read_text()
        assert "import modeling_tvtsv2" not in source and "from modeling_tvtsv2" not in source, path.name
        av_imports = re.findall(r"^\s*(?:import av\b|from av\b)", source, re.M)
        if av_imports:  # every PyAV import sits in a try block: transformers' check_imports skips try blocks
            importing_av += 1
            assert len(av_imports) == len(re.findall(r"\ntry:[^\n]*\n    import av\n", source)), path.name
    assert importing_av >= 1
