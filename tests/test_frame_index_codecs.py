"""read_video's frame index is the decoder's presentation order for every container/codec pair (issue 21, item 0).

Each file is generated with PyAV (B-frames in AVI, MPEG-1/2 program streams, MJPEG, raw streams whose packets carry
no times) and read twice: by a plain PyAV decode of every frame, and by ``read_video``. Frame ``k`` of the reader
must be frame ``k`` of the plain decode, pixel for pixel, for ``num_frames=None`` and for uniform sampling (the
original formula: middles of ``linspace(0, n, T + 1)`` segments, computed here independently).
"""

from pathlib import Path

import av
import numpy as np
import pytest

from modeling_tvtsv2.video_reading_tvtsv2 import read_video


# I B B P B B P ...: GOPs of 30 with two B-frames; scene-change detection off, or PyAV's moving texture gives I only.
_B_FRAME_OPTIONS = {"g": "30", "bf": "2", "sc_threshold": "1000000000"}
_CASES = {
    # name: (codec, container format or None, pixel format, frames, encoder options)
    # The MPEG-1 program stream's muxer gives the GOP's first I-frame the time of an earlier B-frame: two
    # packets share a presentation time (and the next GOP's times skip one).
    "mpeg4_bframes.avi": ("mpeg4", None, "yuv420p", 40, _B_FRAME_OPTIONS),
    "mpeg1_program_stream.mpg": ("mpeg1video", None, "yuv420p", 40, _B_FRAME_OPTIONS),
    "mpeg2_program_stream.mpg": ("mpeg2video", "vob", "yuv420p", 40, _B_FRAME_OPTIONS),
    "mjpeg.avi": ("mjpeg", None, "yuvj420p", 16, {}),
    "raw_mpeg4_stream.m4v": ("mpeg4", "m4v", "yuv420p", 40, _B_FRAME_OPTIONS),
    "raw_h264_no_packet_times.h264": ("libx264", "h264", "yuv420p", 40, {"g": "30", "bf": "2"}),
}


def _encode(path: Path, codec: str, fmt: str | None, pix_fmt: str, frames: int, options: dict) -> None:
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=25, options=dict(options))
        stream.width = stream.height = 64
        stream.pix_fmt = pix_fmt
        for i in range(frames):
            image = np.roll(texture, i, axis=1)  # every frame differs from every other one
            image[:4, :4] = i
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("codecs")
    paths = {}
    for name, spec in _CASES.items():
        paths[name] = folder / name
        _encode(paths[name], *spec)
    return paths


def _plain_decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _original_uniform(n: int, count: int) -> list[int]:
    edges = [int(e) for e in np.linspace(0, n, count + 1)]
    return [(edges[i] + edges[i + 1] - 1) // 2 for i in range(count)]


def _positions_in(decoded: list[np.ndarray], frames) -> list[int]:
    """For each frame read, its position in the plain decode (-1: none is identical)."""
    keys = {reference.tobytes(): k for k, reference in enumerate(decoded)}
    assert len(keys) == len(decoded)  # the plain decode's frames are all different
    return [keys.get(frame.tobytes(), -1) for frame in frames.numpy()]


def test_the_files_have_the_packet_times_they_stand_for(media):
    def packet_times(name):
        with av.open(str(media[name])) as container:
            return [packet.pts for packet in container.demux(video=0) if packet.size]

    repeated = packet_times("mpeg1_program_stream.mpg")
    assert len(set(repeated)) < len(repeated)
    assert all(pts is None for pts in packet_times("raw_h264_no_packet_times.h264"))
    reordered = packet_times("mpeg4_bframes.avi")
    assert reordered != sorted(reordered)  # B-frames: decode order is not presentation order


@pytest.mark.parametrize("name", list(_CASES))
def test_every_frame_is_the_plain_decode_in_order(media, name):
    decoded = _plain_decode(media[name])
    assert len(decoded) == _CASES[name][3]  # the file holds what was encoded
    frames, metadata = read_video(media[name], num_frames=None)
    assert metadata.total_num_frames == len(decoded)
    assert _positions_in(decoded, frames) == list(range(len(decoded)))


@pytest.mark.parametrize("name", list(_CASES))
def test_uniform_sampling_picks_the_original_formulas_frames(media, name):
    decoded = _plain_decode(media[name])
    frames, metadata = read_video(media[name], num_frames=12, sampling="uniform")
    expected = _original_uniform(len(decoded), 12)
    assert metadata.frames_indices == expected
    assert _positions_in(decoded, frames) == expected
