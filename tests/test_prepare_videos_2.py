"""prepare-videos defaults for fast sampling (issue 12 item 3): at most 10 frames per second, every frame a
keyframe, the kept frames at their source times (one per 1/10 s slot); the previous behaviour by flags."""

import math
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import torch

from modeling_tvtsv2.data.collator import TVTSv2PretrainingCollator
from modeling_tvtsv2.data.prepare_videos import TranscodeSettings, transcode_video
from modeling_tvtsv2.video_reading_tvtsv2 import read_video, read_video_pixels

from conftest import HANG_GUARD_SECONDS


DATA = Path(__file__).resolve().parent / "data"
REPO = DATA.parent.parent
OBAMA = DATA / "obama_speech.mp4"  # 320x240, 11.9 fps, 105 frames, 8.7 s


def _packets(path: Path) -> list[tuple[int, bool]]:
    with av.open(str(path)) as container:
        return [(p.pts, p.is_keyframe) for p in container.demux(video=0) if p.size]


def test_defaults_are_all_intra_at_most_10_fps_on_the_source_times(tmp_path):
    prepared = tmp_path / "obama.mp4"
    info = transcode_video(OBAMA, prepared)
    packets = _packets(prepared)
    assert all(key for _, key in packets)  # every frame a keyframe: a sampled frame decodes alone
    _, meta_in = read_video(OBAMA, num_frames=None)
    _, meta_out = read_video(prepared, num_frames=None)
    times_in = {round(t, 6) for t in meta_in.timestamps}
    assert all(round(t, 6) in times_in for t in meta_out.timestamps)  # source times, so transcripts stay aligned
    # One frame per 0.1 s slot: a source just above the cap keeps ~10 fps (not every other frame, ~6 fps).
    duration = meta_in.timestamps[-1]
    assert len(meta_out.timestamps) == info["frames"] == math.floor(duration * 10) + 1
    slots = [math.floor(t * 10 + 1e-6) for t in meta_out.timestamps]
    assert slots == sorted(set(slots))
    # Nothing on screen is further than one slot from a kept frame.
    assert max(b - a for a, b in zip(meta_out.timestamps, meta_out.timestamps[1:])) < 0.2


def test_kept_frames_are_the_source_pictures(tmp_path):
    prepared = tmp_path / "obama.mp4"
    transcode_video(OBAMA, prepared, TranscodeSettings(crf=0, tune=None))  # near-lossless, to compare pictures
    frames_in, meta_in = read_video(OBAMA, num_frames=None)
    frames_out, meta_out = read_video(prepared, num_frames=None)
    index = {round(t, 6): i for i, t in enumerate(meta_in.timestamps)}
    for position, t in enumerate(meta_out.timestamps):
        source = frames_in[index[round(t, 6)]].float()
        other = frames_in[index[round(t, 6)] - 1].float() if index[round(t, 6)] else frames_in[1].float()
        error = (frames_out[position].float() - source).abs().mean()
        # The same picture (4:2:0 round trip), much closer than to the neighbouring source frame.
        assert error < 3 and error < (frames_out[position].float() - other).abs().mean() / 2, (t, float(error))


def test_training_and_eval_samples_read_from_the_prepared_file(tmp_path):
    prepared = tmp_path / "obama.mp4"
    transcode_video(OBAMA, prepared)
    pixels, _ = read_video_pixels(prepared, 12, "random", transform="train",
                                     generator=torch.Generator().manual_seed(0))
    assert pixels.shape == (12, 3, 224, 224)
    collator = TVTSv2PretrainingCollator(tokenizer=None, num_frames=12, training=True)
    sample = collator._decode({"video": str(prepared)}, torch.Generator().manual_seed(0))
    assert sample.shape == (12, 3, 224, 224)
    # eval (uniform) frames are the kept frames nearest the source's sampled instants (within one slot)
    _, meta_src = read_video(OBAMA, 12, "uniform")
    _, meta_eval = read_video(prepared, 12, "uniform")
    assert np.max(np.abs(np.array(meta_src.timestamps) - np.array(meta_eval.timestamps))) < 0.2


def test_previous_defaults_by_flags_in_both_spellings(tmp_path):
    spellings = (["--max_fps", "none", "--keyframe_seconds", "1"], ["--max-fps", "None", "--keyframe-seconds", "1"])
    for spelling in spellings:
        output = tmp_path / spelling[0].strip("-")
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / "obama.mp4").write_bytes(OBAMA.read_bytes())
        command = [sys.executable, "-m", "modeling_tvtsv2", "prepare-videos", "--input", str(tmp_path / "in"),
                   "--output", str(output), *spelling]
        result = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_SECONDS, cwd=REPO)
        assert result.returncode == 0, result.stderr
        packets = _packets(output / "obama.mp4")
        assert len(packets) == 105  # every frame kept
        keys = [i for i, (_, key) in enumerate(packets) if key]
        assert keys[0] == 0 and len(keys) < 105 // 5 and max(b - a for a, b in zip(keys, keys[1:])) <= 12
    command = [sys.executable, "-m", "modeling_tvtsv2", "prepare-videos", "--input", str(tmp_path / "in"),
               "--output", str(tmp_path / "bad"), "--max_fps", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_SECONDS, cwd=REPO)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "--max_fps" in result.stderr


def _top_level_boxes(path: Path) -> list[bytes]:
    data, boxes, offset = path.read_bytes(), [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        boxes.append(data[offset + 4 : offset + 8])
        if size == 1:  # 64-bit size
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        if size < 8:
            break
        offset += size
    return boxes


def test_prepared_files_put_the_sample_table_first_and_a_truncated_copy_still_reads(tmp_path):
    prepared = tmp_path / "obama.mp4"
    transcode_video(OBAMA, prepared)
    boxes = _top_level_boxes(prepared)
    assert b"moov" in boxes and b"mdat" in boxes and boxes.index(b"moov") < boxes.index(b"mdat"), boxes
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(prepared.read_bytes()[: prepared.stat().st_size * 2 // 3])
    frames, metadata = read_video(truncated, num_frames=4)
    assert frames.shape[0] == 4 and metadata.frame_timestamps[-1] < 7.0  # from the part that is there
