"""One timeline everywhere, and prepare-videos reruns that cannot mix settings (issue 21, items 4 and 5).

4. A video stream that starts after its container (audio from 0, video from 1.5 s) reads from 1.5 s in the source
   and in its prepared copy, and ``probe_video`` measures its duration on the reader's timeline (so extraction
   windows cover its last second).
5. A prepare-videos rerun with other settings is refused with the difference named (``--overwrite`` redoes).
"""

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from modeling_tvtsv2.data.prepare_videos import TranscodeSettings, main, prepare_videos, transcode_video
from modeling_tvtsv2.video_decoding_tvtsv2 import probe_video
from modeling_tvtsv2.video_reading_tvtsv2 import read_video


def _late_video(path: Path) -> Path:
    """Audio from 0 to 3 s, 30 video frames at 30 fps from 1.5 s (an MP4: its timeline starts at 0)."""
    with av.open(str(path), "w") as container:
        audio = container.add_stream("aac", rate=8000)
        audio.layout = "mono"
        video = container.add_stream("libx264", rate=30)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        for start in range(0, 24000, 1024):
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            samples.sample_rate, samples.pts, samples.time_base = 8000, start, Fraction(1, 8000)
            for packet in audio.encode(samples):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 8 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = 45 + i, Fraction(1, 30)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
    return path


def test_a_late_video_stream_keeps_its_times_through_prepare_videos_and_the_probe(tmp_path):
    source = _late_video(tmp_path / "late.mp4")
    _, before = read_video(source, num_frames=None)
    assert before.timestamps[0] == pytest.approx(1.5)
    prepared = tmp_path / "prepared.mp4"
    transcode_video(source, prepared, TranscodeSettings(max_fps=None))
    _, after = read_video(prepared, num_frames=None)
    assert after.timestamps == pytest.approx(before.timestamps, abs=1e-3)
    for path, metadata in ((source, before), (prepared, after)):
        # The probe's duration is the reader's end of the video (last frame start + one frame), not the span.
        assert probe_video(path).duration == pytest.approx(metadata.timestamps[-1] + 1 / 30, abs=0.01)


def test_prepare_videos_rerun_with_other_settings_is_refused_naming_the_difference(tmp_path, capsys):
    source = tmp_path / "in"
    source.mkdir()
    _late_video(source / "a.mp4")
    output = tmp_path / "out"
    first = prepare_videos(source, output, settings=TranscodeSettings(short_side=16), progress=False)
    assert len(first.transcoded) == 1
    made = (output / "a.mp4").read_bytes()
    status = main(["--input", str(source), "--output", str(output), "--short-side", "32"])
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("20")]  # no log lines
    assert status == 2 and len(errors) == 1 and errors[0].startswith("error: ")
    assert "short_side: 16 there, 32 now" in errors[0]
    assert (output / "a.mp4").read_bytes() == made
    assert json.loads((output / "prepare_videos_report.json").read_text())["settings"]["short_side"] == 16
    # The same settings resume; --overwrite redoes every video with the new ones.
    again = prepare_videos(source, output, settings=TranscodeSettings(short_side=16), progress=False)
    assert len(again.already_done) == 1
    redone = prepare_videos(source, output, settings=TranscodeSettings(short_side=32), overwrite=True, progress=False)
    assert len(redone.transcoded) == 1
    with av.open(str(output / "a.mp4")) as container:
        assert container.streams.video[0].height == 32
