"""`tvtsv2 extract`: corpus embeddings from real video files (PyAV) and real 🤗 Datasets, shards, resume after an
interruption, sliding windows, unreadable videos, and `accelerate launch` with 2 CPU processes (gloo).

Expected embeddings are computed independently, clip by clip, with the processor and `get_video_features`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
from modeling_tvtsv2.cli import main as cli_main
from modeling_tvtsv2.data.demo_corpus import build_demo_corpus
from modeling_tvtsv2.evaluation.extract import (
    MANIFEST_NAME,
    SHARD_MARKER,
    ExtractionError,
    extract_features,
    open_video_table,
    parse_windows,
    plan_windows,
)
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor
from modeling_tvtsv2.tools.model_loading import load_model_and_processor
from modeling_tvtsv2.video_reading_tvtsv2 import read_video

from conftest import HANG_GUARD_SECONDS

DATA = Path(__file__).parent / "data"
NUM_FRAMES = 4


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-model")
    torch.manual_seed(0)
    TVTSv2Model(TVTSv2Config.from_preset("tiny")).save_pretrained(folder)
    TVTSv2Processor.from_defaults(image_size=64, num_frames=NUM_FRAMES).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model_and_processor(tiny_model_dir):
    return load_model_and_processor(str(tiny_model_dir))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo_corpus(tmp_path_factory.mktemp("demo"), num_videos=4, num_caption_videos=10, seed=11,
                             validation_size=2)  # fmt: skip


@pytest.fixture(scope="module")
def clips_folder(tmp_path_factory, demo) -> Path:
    """The repo's real clips plus two demo transcript clips (15 s, four scenes) in one folder."""
    folder = tmp_path_factory.mktemp("clips")
    for name in ("obama_speech.mp4", "park.mp4"):
        shutil.copy(DATA / name, folder / name)
    (folder / "demo").mkdir()
    for name in ("clip_00000.mp4", "clip_00001.mp4"):
        shutil.copy(demo.root / "raw" / "transcript" / name, folder / "demo" / name)
    return folder


def _embed_directly(model, processor, video, start=None, end=None) -> np.ndarray:
    inputs = processor.video_processor(videos=[video], start=start, end=end, return_tensors="pt")
    with torch.no_grad():
        out = model.get_video_features(pixel_values_videos=inputs["pixel_values_videos"]).pooler_output
    return torch.nn.functional.normalize(out, dim=-1)[0].numpy()


def _load(folder: Path) -> dict:
    return datasets.load_from_disk(str(folder)).with_format("numpy")[:]


# --------------------------------------------------------------------------------------------------------------


def test_window_planning():
    assert parse_windows("4") == (4.0, 4.0)
    assert parse_windows("4,2") == (4.0, 2.0)
    for bad in ("4,", "x", "-1", "0,1", "1,2,3"):
        with pytest.raises(ExtractionError, match="--windows"):
            parse_windows(bad)
    assert plan_windows(10.0, 4.0, 2.0) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    # the tail is covered by one window ending at the end of the video
    assert plan_windows(9.0, 4.0, 4.0) == [(0, 4), (4, 8), (5, 9)]
    assert plan_windows(2.5, 4.0, 1.0) == [(0, 2.5)]  # shorter than a window: the whole video


def test_dataset_input_with_text_and_kept_columns(demo, model_and_processor, tmp_path):
    model, processor = model_and_processor
    table = open_video_table(demo.caption, split="train", text_column="caption", keep_columns=["duration"])
    report = extract_features(model, processor, table, tmp_path / "out", embedding_dtype="float16", shard_size=3,
                              batch_size=2, num_workers=2, show_progress=False)  # fmt: skip
    assert report.num_rows == len(table) == 8 and report.num_shards == 3 and report.skipped == []
    out = datasets.load_from_disk(str(tmp_path / "out"))
    assert out.features["video_embedding"].feature.dtype == "float16"
    source = datasets.load_from_disk(str(demo.caption))["train"].cast_column("video", datasets.Video(decode=False))
    rows = _load(tmp_path / "out")
    assert list(rows["video_id"]) == source["video_id"][:]
    assert list(rows["text"]) == source["caption"][:]
    np.testing.assert_allclose(rows["duration"], source["duration"][:])
    for i in (0, 5):
        expected = _embed_directly(model, processor, source[i]["video"]["bytes"])
        np.testing.assert_allclose(rows["video_embedding"][i].astype(np.float32), expected, atol=2e-3)
        inputs = processor(text=[source[i]["caption"]], return_tensors="pt")
        with torch.no_grad():
            text = model.get_text_features(input_ids=inputs["input_ids"]).pooler_output
        text = torch.nn.functional.normalize(text, dim=-1)[0].numpy()
        np.testing.assert_allclose(rows["text_embedding"][i].astype(np.float32), text, atol=2e-3)
        # the recorded sampling is the one the video processor uses: uniform, segment middles of 4 s at 4 fps
        _, metadata = read_video(source[i]["video"]["bytes"], num_frames=NUM_FRAMES)
        np.testing.assert_allclose(rows["frame_times"][i], metadata.frame_timestamps, atol=1e-6)
    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())
    assert manifest["settings"]["sampling"] == "uniform" and manifest["settings"]["num_frames"] == NUM_FRAMES
    assert not (tmp_path / "out.partial").exists()


def test_windows_over_real_clips_match_the_window_reader(clips_folder, model_and_processor, tmp_path):
    model, processor = model_and_processor
    table = open_video_table(clips_folder)
    assert table.video_ids == ["demo/clip_00000.mp4", "demo/clip_00001.mp4", "obama_speech.mp4", "park.mp4"]
    extract_features(model, processor, table, tmp_path / "win", windows=(3.0, 1.0), shard_size=2,
                     show_progress=False)  # fmt: skip
    rows = _load(tmp_path / "win")
    ids = list(rows["video_id"])
    # the 15 s demo clip: windows [0,3], [1,4], ..., [12,15]
    demo_rows = [i for i, v in enumerate(ids) if v == "demo/clip_00000.mp4"]
    assert [(rows["start"][i], rows["end"][i]) for i in demo_rows] == [(s, s + 3.0) for s in range(13)]
    for i in (demo_rows[0], demo_rows[7]):
        start, end = float(rows["start"][i]), float(rows["end"][i])
        assert all(start <= t < end for t in rows["frame_times"][i])
        expected = _embed_directly(model, processor, str(clips_folder / ids[i]), start, end)
        np.testing.assert_allclose(rows["video_embedding"][i], expected, atol=1e-5)
    assert ids.count("obama_speech.mp4") >= 3 and ids.count("park.mp4") >= 1
    norms = np.linalg.norm(rows["video_embedding"], axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_unreadable_videos_are_skipped_and_reported(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(DATA / "park.mp4", folder / "good.mp4")
    (folder / "broken.mp4").write_bytes(b"this is not a video" * 50)
    out = tmp_path / "out"
    argv = ["extract", "--model", str(tiny_model_dir), "--input", str(folder), "--output", str(out),
            "--num_workers", "0", "--no-progress"]  # fmt: skip
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert "skipped 1 unreadable" in printed and "skipped broken.mp4:" in printed
    assert list(_load(out)["video_id"]) == ["good.mp4"]
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert [entry["video_id"] for entry in manifest["skipped"]] == ["broken.mp4"]


class _InterruptingReader:
    """The folder's reader, interrupted (Ctrl-C) when asked for video `stop_at`."""

    def __init__(self, reader, stop_at: int):
        self.reader, self.stop_at = reader, stop_at

    def __call__(self, index: int):
        if index == self.stop_at:
            raise KeyboardInterrupt
        return self.reader(index)


def test_resume_after_an_interrupted_extraction(clips_folder, model_and_processor, tmp_path):
    model, processor = model_and_processor
    settings = dict(windows=(4.0, 2.0), shard_size=1, batch_size=3, show_progress=False)
    table = open_video_table(clips_folder)
    extract_features(model, processor, table, tmp_path / "reference", **settings)

    output = tmp_path / "out"
    interrupted = open_video_table(clips_folder)
    interrupted.reader = _InterruptingReader(interrupted.reader, stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        extract_features(model, processor, interrupted, output, **settings)
    work = tmp_path / "out.partial"
    assert not output.exists()
    done = sorted(p.name for p in (work / "shards").iterdir())
    assert done == ["shard-00000", "shard-00001"]
    # a shard folder left without its completion marker (a crash before the rename) and a temporary leftover
    shutil.copytree(work / "shards" / "shard-00001", work / "shards" / "shard-00002")
    (work / "shards" / "shard-00002" / SHARD_MARKER).unlink()
    shutil.copytree(work / "shards" / "shard-00001", work / "shards" / "shard-00003.tmp-1")

    # other settings are refused, with the difference named
    with pytest.raises(ExtractionError, match="num_frames"):
        extract_features(model, processor, table, output, **settings, num_frames=2)

    report = extract_features(model, processor, table, output, **settings)
    assert report.reused_shards == 2
    assert (work / "shards").exists() is False and not work.exists()
    ours, reference = _load(output), _load(tmp_path / "reference")
    assert list(ours["video_id"]) == list(reference["video_id"])
    for column in ("start", "end", "video_embedding"):
        np.testing.assert_array_equal(ours[column], reference[column])

    # a complete output is left alone; other settings need --overwrite, which replaces it
    again = extract_features(model, processor, table, output, **settings)
    assert again.already_complete
    with pytest.raises(ExtractionError, match="--overwrite"):
        extract_features(model, processor, table, output, **{**settings, "windows": (2.0, 2.0)})
    report = extract_features(model, processor, table, output, **{**settings, "windows": None}, overwrite=True)
    assert report.num_rows == 4 and "start" not in datasets.load_from_disk(str(output)).column_names


def test_cli_errors_are_one_line(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "user-folder").mkdir()
    (tmp_path / "user-folder" / "notes.txt").write_text("mine")
    argv = ["extract", "--model", str(tiny_model_dir), "--input", str(DATA), "--output", str(tmp_path / "user-folder"),
            "--no-progress"]  # fmt: skip
    assert cli_main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --output") and "--overwrite" in error and "\n" not in error
    assert (tmp_path / "user-folder" / "notes.txt").read_text() == "mine"
    assert cli_main(["extract", "--model", str(tiny_model_dir), "--input", str(tmp_path / "missing"),
                     "--output", str(tmp_path / "o"), "--windows", "3,x"]) == 2  # fmt: skip
    assert "--windows" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_give_the_same_output_as_one(clips_folder, tiny_model_dir, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` (CPU, gloo) vs one process: identical datasets."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    common = ["extract", "--model", str(tiny_model_dir), "--input", str(clips_folder), "--windows", "4,2",
              "--shard-size", "1", "--batch-size", "4", "--num-workers", "1", "--no-progress"]  # fmt: skip
    one = [sys.executable, "-m", "modeling_tvtsv2", *common, "--output", str(tmp_path / "one")]
    two = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(29600 + os.getpid() % 1000),
           "-m", "modeling_tvtsv2", *common, "--output", str(tmp_path / "two")]  # fmt: skip
    for command in (one, two):
        result = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_SECONDS, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "wrote" in result.stdout and result.stdout.count("wrote") == 1  # the main process reports once
    a, b = _load(tmp_path / "one"), _load(tmp_path / "two")
    assert list(a["video_id"]) == list(b["video_id"]) and len(a["video_id"]) > 10
    for column in ("row", "start", "end", "video_embedding"):
        np.testing.assert_array_equal(a[column], b[column])
    np.testing.assert_array_equal(np.concatenate(a["frame_times"]), np.concatenate(b["frame_times"]))
    settings = json.loads((tmp_path / "two" / MANIFEST_NAME).read_text())["settings"]
    assert settings == json.loads((tmp_path / "one" / MANIFEST_NAME).read_text())["settings"]
