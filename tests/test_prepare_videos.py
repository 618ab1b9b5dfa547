"""prepare-videos: training-ready transcodes (H.264, shorter side 268, keyframe every second, no audio, same
timestamps), resumable, bad inputs skipped and reported, outputs never overwritten without --overwrite, and the
corpus builders accept the output."""

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import datasets
import numpy as np
import pytest

from modeling_tvtsv2.data.corpus_builders import build_transcript_corpus
from modeling_tvtsv2.data.prepare_videos import REPORT_NAME, TranscodeSettings, prepare_videos
from modeling_tvtsv2.video_reading_tvtsv2 import read_video

from conftest import HANG_GUARD_SECONDS


DATA = Path(__file__).resolve().parent / "data"
REPO = DATA.parent.parent


def _write_sparse_keyframes(path: Path, seconds: float = 3.0, rate: int = 30) -> None:
    """A 640x360 H.264 file with one keyframe only (like many web videos: keyframes far apart)."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (23, 60, 3), dtype=np.uint8)
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "1000"}
        for i in range(int(seconds * rate)):
            image = np.repeat(np.repeat(np.roll(coarse, i, axis=1), 16, axis=0), 16, axis=1)[:360, :640]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            output.mux(stream.encode(frame))
        output.mux(stream.encode())


@pytest.fixture()
def source(tmp_path):
    folder = tmp_path / "in"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(DATA / "obama_speech.mp4", folder / "obama_speech.mp4")
    shutil.copy(DATA / "obama_speech.pocketsphinx.srt", folder / "obama_speech.pocketsphinx.srt")
    shutil.copy(DATA / "park.mp4", folder / "nested" / "park.mp4")
    _write_sparse_keyframes(folder / "nested" / "sparse.mkv")
    (folder / "nested" / "broken.mp4").write_bytes(b"this is not a video" * 10)
    return folder


def _keyframe_gaps(path: Path) -> tuple[list[int], int]:
    with av.open(str(path)) as container:
        flags = [p.is_keyframe for p in container.demux(video=0) if p.size]
    keys = [i for i, key in enumerate(flags) if key]
    return [b - a for a, b in zip(keys, keys[1:] + [len(flags)])], keys[0]


def test_prepared_files_are_small_h264_with_frequent_keyframes_no_audio_and_the_same_timestamps(source, tmp_path):
    output = tmp_path / "out"
    # Every frame kept (the previous defaults): the timestamp comparison below is frame by frame.
    report = prepare_videos(source, output, settings=TranscodeSettings(max_fps=None, keyframe_seconds=1.0),
                            progress=False)
    assert len(report.transcoded) == 3 and len(report.failed) == 1
    for name, size in [("obama_speech.mp4", (320, 240)), ("nested/park.mp4", (356, 268)),
                       ("nested/sparse.mkv", (476, 268))]:
        original = source / name
        prepared = output / Path(name).with_suffix(".mp4")
        with av.open(str(original)) as container:
            assert name == "nested/sparse.mkv" or container.streams.audio  # the real clips have audio
        with av.open(str(prepared)) as container:
            assert not container.streams.audio and len(container.streams) == 1
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert (stream.width, stream.height) == size  # shorter side 268, never upscaled
            fps = float(stream.average_rate)
        gaps, first_key = _keyframe_gaps(prepared)
        assert first_key == 0 and max(gaps) <= math.ceil(fps), (name, gaps)  # a keyframe at least every second
        frames_in, meta_in = read_video(original, num_frames=None)
        frames_out, meta_out = read_video(prepared, num_frames=None)
        assert len(meta_out.timestamps) == len(meta_in.timestamps)
        frame_time = 1 / meta_in.fps
        assert max(abs(a - b) for a, b in zip(meta_in.timestamps, meta_out.timestamps)) < frame_time
    transcript = "obama_speech.pocketsphinx.srt"
    assert (output / transcript).read_bytes() == (source / transcript).read_bytes()  # copied beside the video
    saved = json.loads((output / REPORT_NAME).read_text())
    assert saved["counts"] == {"transcoded": 3, "already_done": 0, "failed": 1}
    assert saved["failed"][0]["input"].endswith("broken.mp4") and "broken.mp4" in saved["failed"][0]["reason"]


def test_rerun_resumes_and_never_overwrites_without_overwrite(source, tmp_path):
    output = tmp_path / "out"
    (output / "nested").mkdir(parents=True)
    user_file = output / "nested" / "park.mp4"
    user_file.write_bytes(b"the user's own file")
    stale = output / ".obama_speech.tmp-999999.mp4"
    stale.write_bytes(b"left by a killed run")
    first = prepare_videos(source, output, progress=False)
    assert user_file.read_bytes() == b"the user's own file"  # existing output kept
    assert {Path(r["output"]).name for r in first.already_done} == {"park.mp4"}
    assert not stale.exists()
    done = output / "obama_speech.mp4"
    stamp = done.stat().st_mtime_ns
    second = prepare_videos(source, output, progress=False)
    assert not second.transcoded and len(second.already_done) == 3 and len(second.failed) == 1
    assert done.stat().st_mtime_ns == stamp
    third = prepare_videos(source, output, overwrite=True, progress=False)
    assert len(third.transcoded) == 3
    with av.open(str(user_file)) as container:  # replaced by a complete transcode
        assert container.streams.video[0].height == 268
    assert not [p for p in output.rglob("*") if ".tmp-" in p.name]


def test_cli_both_spellings_parallel_workers_and_clear_errors(source, tmp_path, capsys):
    output = tmp_path / "out"
    command = [sys.executable, "-m", "modeling_tvtsv2", "prepare-videos", "--input", str(source), "--output",
               str(output), "--num-workers", "2", "--short_side", "200"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_SECONDS, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "3 transcoded, 0 already done, 1 failed" in result.stdout
    assert "skipped " in result.stderr and "broken.mp4" in result.stderr and "Traceback" not in result.stderr
    with av.open(str(output / "nested" / "park.mp4")) as container:
        assert container.streams.video[0].height == 200
    script = importlib.util.spec_from_file_location("prepare_videos_script", REPO / "processing" / "prepare_videos.py")
    module = importlib.util.module_from_spec(script)
    script.loader.exec_module(module)
    code = module.main(["--input", str(source), "--output", str(source / "prepared"), "--num_workers", "1"])
    stderr = capsys.readouterr().err
    assert code == 2 and stderr.count("\n") == 1 and "lies inside the input folder" in stderr
    assert not (source / "prepared").exists()


def test_corpus_builders_accept_the_output(source, tmp_path):
    prepared = tmp_path / "prepared"
    prepare_videos(source, prepared, progress=False)
    from_raw = build_transcript_corpus(source, tmp_path / "corpus_raw")
    from_prepared = build_transcript_corpus(prepared, tmp_path / "corpus_prepared")
    assert from_prepared.num_rows == from_raw.num_rows == {"train": 1}
    raw = datasets.load_from_disk(str(tmp_path / "corpus_raw"))["train"]
    ready = datasets.load_from_disk(str(tmp_path / "corpus_prepared"))["train"]
    assert ready["video_id"] == raw["video_id"] and ready["segments"] == raw["segments"]
    assert ready[0]["video"] == "../prepared/obama_speech.mp4"  # relative to the corpus folder
    # A saved corpus as input: its videos are transcoded and a copy points at them.
    report = prepare_videos(tmp_path / "corpus_raw", tmp_path / "from_corpus", progress=False)
    copy = datasets.load_from_disk(report.corpus)["train"]
    assert copy["video_id"] == raw["video_id"]
    assert copy[0]["video"] == "../videos/obama_speech.mp4"  # relative to the copy
    assert os.path.getsize(Path(report.corpus) / copy[0]["video"]) > 0


def test_max_fps_thins_frames_and_the_kept_frames_keep_their_times(tmp_path):
    from modeling_tvtsv2.data.prepare_videos import TranscodeSettings, transcode_video

    source = tmp_path / "sparse.mkv"
    _write_sparse_keyframes(source)  # 30 fps, 3 s
    info = transcode_video(source, tmp_path / "thin.mp4", TranscodeSettings(max_fps=10))
    assert info["frames"] == 30 and info["dropped_frames"] == 60
    _, meta_in = read_video(source, num_frames=None)
    _, meta_out = read_video(tmp_path / "thin.mp4", num_frames=None)
    times_in = {round(t, 6) for t in meta_in.timestamps}
    assert all(round(t, 6) in times_in for t in meta_out.timestamps)  # original times, not renumbered
    assert min(b - a for a, b in zip(meta_out.timestamps, meta_out.timestamps[1:])) > 0.099
    gaps, _ = _keyframe_gaps(tmp_path / "thin.mp4")
    assert max(gaps) <= 10  # still a keyframe every second at the new rate


def test_a_corpus_with_embedded_videos_gets_a_copy_with_paths_and_reruns_keep_it(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(DATA / "obama_speech.mp4", folder / "obama_speech.mp4")
    shutil.copy(DATA / "obama_speech.pocketsphinx.srt", folder / "obama_speech.pocketsphinx.srt")
    build_transcript_corpus(folder, tmp_path / "corpus", embed_videos=True)
    report = prepare_videos(tmp_path / "corpus", tmp_path / "out", progress=False)
    assert len(report.transcoded) == 1 and not report.failed
    copy = datasets.load_from_disk(report.corpus)["train"]
    prepared = (tmp_path / "out" / "videos" / "obama_speech.mp4").resolve()
    assert copy[0]["video"] == "../videos/obama_speech.mp4" and copy[0]["video_id"] == "obama_speech"
    _, meta = read_video(str(prepared), num_frames=None)
    assert len(meta.timestamps) == 87  # 10 fps default: one frame per 0.1 s slot of 8.7 s
    stamp = prepared.stat().st_mtime_ns
    again = prepare_videos(tmp_path / "corpus", tmp_path / "out", progress=False)
    assert not again.transcoded and len(again.already_done) == 1 and prepared.stat().st_mtime_ns == stamp
    assert not (tmp_path / "out" / "videos" / ".embedded").exists()
