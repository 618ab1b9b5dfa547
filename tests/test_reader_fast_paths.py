"""The reader's shortcuts for MP4/MOV files (issue 12, data path): each must give exactly what the full path gives.

* quick open: stream probing without decoding for MP4/MOV files whose header holds the sample table; a fragmented
  MP4 or another container gets the full probe;
* header index: the frame list of an all-intra MP4 from its sample table instead of demuxing the window; a file
  whose presentation times differ from its decode times is detected while decoding and read again from the
  demuxed list, with the same random draws; a truncated file is indexed by demuxing;
* crop as a view when the frames need no resize (prepared files).
"""

import collections
import hashlib
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from modeling_tvtsv2 import video_decoding_tvtsv2 as vp
from modeling_tvtsv2.data.prepare_videos import TranscodeSettings, transcode_video
from modeling_tvtsv2.video_reading_tvtsv2 import read_video, read_video_pixels
from modeling_tvtsv2.video_transforms_tvtsv2 import preprocess_frames


DATA = Path(__file__).resolve().parent / "data"
PARK = DATA / "park.mp4"  # 640x480: prepared to 356x268


def _texture(frames: int, width: int = 320, height: int = 240) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 256, (height // 4, (width + 2 * frames) // 4 + 1, 3), dtype=np.uint8)
    texture = tile.repeat(4, 0).repeat(4, 1)
    return [np.ascontiguousarray(texture[:height, 2 * i : 2 * i + width]) for i in range(frames)]


def _encode(path: Path, options: dict, container_options: dict | None = None, fmt: str | None = None,
            frames: int = 40, rate: int = 10, composition_offset=None) -> Path:
    """An H.264 file; ``composition_offset(n)`` adds that many ticks to packet n's pts (a ctts box in MP4)."""
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as output:
        stream = output.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = options
        count = 0

        def mux(packets):
            nonlocal count
            for packet in packets:
                if composition_offset is not None and packet.pts is not None:
                    packet.pts += composition_offset(count)
                    count += 1
                output.mux(packet)

        for i, pixels in enumerate(_texture(frames)):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            mux(stream.encode(frame))
        mux(stream.encode())
    return path


def _full_probe_facts(path: Path) -> tuple:
    with av.open(str(path), metadata_errors="ignore") as container:
        return _facts(container)


def _facts(container) -> tuple:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    header = (container.start_time, container.duration, stream.start_time, stream.duration, stream.time_base,
              stream.average_rate, stream.guessed_rate, stream.base_rate, stream.codec_context.has_b_frames)
    pictures = [(f.pts, hashlib.md5(f.to_ndarray(format="rgb24").tobytes()).hexdigest())
                for f in container.decode(stream)]
    return header, pictures


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fast_paths")
    return {
        "bframes_mp4": _encode(folder / "bframes.mp4", {"g": "12", "bf": "3"}),
        "fragmented_mp4": _encode(folder / "fragmented.mp4", {"g": "12", "bf": "3"},
                                  {"movflags": "frag_keyframe+empty_moov"}),
        "matroska": _encode(folder / "bframes.mkv", {"g": "12", "bf": "3"}, fmt="matroska"),
        "intra_mp4": _encode(folder / "intra.mp4", {"g": "1", "tune": "fastdecode"}, frames=60),
        "intra_faststart_mp4": _encode(folder / "intra_faststart.mp4", {"g": "1"}, {"movflags": "faststart"},
                                       frames=60),
        # all-intra, but every presentation time 2 frames after the decode time (ctts): the sample table's
        # times are not the frames' times
        "intra_offset_mp4": _encode(folder / "intra_offset.mp4", {"g": "1"}, frames=60,
                                    composition_offset=lambda n: 2),
    }


def _spy(monkeypatch) -> collections.Counter:
    """Counts how the reader indexed: from the sample table ("header") or by demuxing ("demuxed")."""
    counts: collections.Counter = collections.Counter()
    original = vp._IndexedVideo._header_index

    def header_index(self, start_pts, end_pts):
        frames = original(self, start_pts, end_pts)
        counts["header" if frames is not None else "demuxed"] += 1
        return frames

    monkeypatch.setattr(vp._IndexedVideo, "_header_index", header_index)
    return counts


def test_quick_open_gives_the_full_probe_facts_and_pictures(files):
    for name in ("bframes_mp4", "intra_mp4", "fragmented_mp4", "matroska"):
        with vp.open_av_container(str(files[name])) as container:
            assert _facts(container) == _full_probe_facts(files[name]), name
    with open(files["bframes_mp4"], "rb") as file:  # a file object: the same, and it is left where it was
        file.read(5)
        with vp.open_av_container(file, 0) as container:
            assert _facts(container) == _full_probe_facts(files["bframes_mp4"])


def test_quick_open_is_used_only_where_the_header_says_everything(files):
    # The quick probe decodes nothing, so the probed pixel format stays unknown: that tells which open ran.
    def probed_format(name):
        with vp.open_av_container(str(files[name])) as container:
            return container.streams.video[0].codec_context.pix_fmt

    assert probed_format("bframes_mp4") is None
    assert probed_format("intra_mp4") is None
    # A fragmented MP4 keeps its samples (and its reorder delay) in later fragments, Matroska has no sample table.
    assert probed_format("fragmented_mp4") == "yuv420p"
    assert probed_format("matroska") == "yuv420p"


def _read(path, **kwargs):
    generator = torch.Generator().manual_seed(3)
    pixels, metadata = read_video_pixels(str(path), 8, "random", generator=generator, transform="train", **kwargs)
    return pixels, metadata.frame_timestamps, metadata.frames_indices, generator.get_state()


def _read_demuxed(monkeypatch, path, **kwargs):
    with monkeypatch.context() as patch:
        patch.setattr(vp._IndexedVideo, "_header_index_possible", lambda self: False)
        return _read(path, **kwargs)


def _same(a, b) -> bool:
    return torch.equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2] and torch.equal(a[3], b[3])


@pytest.mark.parametrize("window", [None, (1.0, 4.5), (2.05, 5.95)])
def test_all_intra_mp4_is_indexed_from_the_sample_table_with_the_same_result(files, monkeypatch, window):
    start, end = window or (None, None)
    demuxed = _read_demuxed(monkeypatch, files["intra_mp4"], start=start, end=end)
    counts = _spy(monkeypatch)
    from_header = _read(files["intra_mp4"], start=start, end=end)
    assert counts == {"header": 1}
    assert _same(from_header, demuxed)


def test_presentation_times_off_the_sample_table_are_caught_and_read_again(files, monkeypatch):
    path = files["intra_offset_mp4"]
    with av.open(str(path)) as container:  # the premise: the sample table's times are not the frames' times
        table = [entry.timestamp for entry in container.streams.video[0].index_entries]
        presented = sorted(p.pts for p in container.demux(video=0) if p.size)
    assert table != presented
    demuxed = _read_demuxed(monkeypatch, path, start=1.0, end=5.0)
    counts = _spy(monkeypatch)
    again = _read(path, start=1.0, end=5.0)
    assert counts == {"header": 1, "demuxed": 1}  # tried, caught, read again from the demuxed list
    assert _same(again, demuxed)  # same frames, same crop, same random draws consumed


def test_truncated_all_intra_file_is_indexed_by_demuxing(files, monkeypatch, tmp_path):
    data = files["intra_faststart_mp4"].read_bytes()  # sample table first: a truncated copy still opens
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    counts = _spy(monkeypatch)
    pixels, times, _, _ = _read(truncated)
    assert counts == {"demuxed": 1}  # the table lists frames whose data is missing
    assert times[-1] < 4.0  # frames only from the part that is there (6 s before truncation)
    assert pixels.shape[0] == 8


def test_prepared_file_crop_needs_no_resize_and_equals_the_two_step_transform(tmp_path):
    prepared = tmp_path / "park.mp4"
    transcode_video(PARK, prepared, TranscodeSettings(max_fps=None))
    _, metadata = read_video(prepared, num_frames=1)
    assert min(metadata.width, metadata.height) == 268  # what the transforms resize to: the crop is a window
    for transform in ("train", "eval"):
        first, second = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        fused, _ = read_video_pixels(prepared, 12, "random", generator=first, transform=transform)
        frames, _ = read_video(prepared, 12, "random", generator=second)
        assert torch.equal(fused, preprocess_frames(frames, transform, generator=second)), transform
