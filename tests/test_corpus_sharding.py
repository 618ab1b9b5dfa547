"""Corpora that travel and corpus tools that shard (issue 18, items 3 and 4): shard formats (Parquet, WebDataset),
relative video paths, WebDataset tars made elsewhere, `--shard_index/--num_shards` of the builders,
prepare-videos and extract (two invocations equal one)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from fractions import Fraction
from pathlib import Path

import av
import datasets
import numpy as np
import pytest
import torch

from modeling_tvtsv2.data.corpus_builders import (
    build_caption_corpus,
    build_transcript_corpus,
    caption_corpus_main,
    transcript_corpus_main,
)
from modeling_tvtsv2.data.prepare_videos import REPORT_NAME, main as prepare_main, prepare_videos
from modeling_tvtsv2.data.schema import load_corpus, video_source
from modeling_tvtsv2.data.sharding import ShardSpec, resolve_shard
from modeling_tvtsv2.pretraining.sources import load_corpus_split

DATA = Path(__file__).parent / "data"


def make_video(path: Path, frames: int = 10, fps: int = 5, size: int = 32, level: int = 0) -> Path:
    """A tiny real MPEG-4 file whose grey level ramps from ``level`` (so that every file differs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps, 1))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            array = np.full((size, size, 3), (level + 20 * i) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


SRT = "1\n00:00:00,200 --> 00:00:01,000\nhello there\n\n2\n00:00:01,100 --> 00:00:01,900\ngeneral kenobi\n"


@pytest.fixture(scope="module")
def transcript_folder(tmp_path_factory) -> Path:
    """Five videos with .srt transcripts, one without, one broken: 5 rows, 2 skipped."""
    folder = tmp_path_factory.mktemp("corpus-src") / "videos"
    for k in range(5):
        make_video(folder / f"v{k}.mp4", level=10 * k)
        (folder / f"v{k}.srt").write_text(SRT.replace("hello", f"hello{k}"), encoding="utf-8")
    make_video(folder / "lonely.mp4")
    (folder / "broken.mp4").write_bytes(b"not a video" * 10)
    (folder / "broken.srt").write_text(SRT, encoding="utf-8")
    return folder


def _rows(dataset) -> list[dict]:
    """Rows with the video as what the decoder gets (bytes, or an absolute path's bytes)."""
    rows = []
    for row in dataset:
        source = video_source(row["video"])
        rows.append({**row, "video": source if isinstance(source, bytes) else Path(source).read_bytes()})
    return rows


# --------------------------------------------------------------------------------------------------------------
# Sharding rules
# --------------------------------------------------------------------------------------------------------------


def test_shard_specs_from_flags_and_launcher_env(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert resolve_shard() == ShardSpec(0, 1)
    assert resolve_shard(2, 3) == ShardSpec(2, 3)
    blocks = [ShardSpec(i, 3).block(list(range(10))) for i in range(3)]
    assert sum(blocks, []) == list(range(10)) and [len(b) for b in blocks] == [3, 3, 4]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")  # torchrun / accelerate launch
    assert resolve_shard() == ShardSpec(1, 2)
    assert resolve_shard(1, 3) == ShardSpec(3, 6)  # job 1 of an array of 3, process 1 of 2
    for bad in ((3, 3), (0, None), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="shard"):
            resolve_shard(*bad)


# --------------------------------------------------------------------------------------------------------------
# Builders: shards equal one build; formats; moved folders
# --------------------------------------------------------------------------------------------------------------


def test_transcript_builder_two_shards_equal_one_and_resume(transcript_folder, tmp_path, capsys):
    one = build_transcript_corpus(transcript_folder, tmp_path / "one", validation_size=2, seed=3)
    assert one.num_rows == {"train": 3, "validation": 2} and len(one.skipped) == 2

    argv = ["--videos", str(transcript_folder), "--output", str(tmp_path / "two"), "--validation-size", "2",
            "--seed", "3", "--num-shards", "2"]
    assert transcript_corpus_main([*argv, "--shard_index", "1"]) == 0
    assert "shard 1 of 2" in capsys.readouterr().out
    assert not (tmp_path / "two").exists()  # nothing in place until every shard is done
    work = tmp_path / ".two.build"
    assert (work / "reports" / "build_report.shard-00001-of-00002.json").is_file()
    assert transcript_corpus_main([*argv, "--shard_index", "1"]) == 0  # a rerun of a finished shard: skipped
    with pytest.raises(ValueError, match="other settings"):  # shards of one build must agree
        build_transcript_corpus(transcript_folder, tmp_path / "two", validation_size=2, seed=4, shard_index=0,
                                num_shards=2)
    assert transcript_corpus_main([*argv, "--shard-index=0"]) == 0  # the last shard merges
    assert not work.exists()

    report = json.loads((tmp_path / "two" / "build_report.json").read_text())
    assert report["num_rows"] == {"train": 3, "validation": 2} and len(report["skipped"]) == 2
    assert sorted((tmp_path / "two" / "reports").iterdir())  # the per-shard reports are kept
    for split in ("train", "validation"):
        assert _rows(load_corpus(tmp_path / "two", split)) == _rows(load_corpus(tmp_path / "one", split))
    # Paths are stored relative to the corpus folder.
    stored = datasets.load_from_disk(str(tmp_path / "two"))["train"][0]["video"]
    assert stored.startswith("../") and not Path(stored).is_absolute()


def test_shard_formats_stream_back_and_equal_the_arrow_corpus(transcript_folder, tmp_path):
    arrow = _rows(load_corpus(build_transcript_corpus(transcript_folder, tmp_path / "arrow").output_dir))
    by_id = {row["video_id"]: row for row in arrow}
    for fmt in ("parquet", "webdataset"):
        for index in (0, 1):
            build_transcript_corpus(transcript_folder, tmp_path / fmt, output_format=fmt, shard_index=index,
                                    num_shards=2, rows_per_file=2)
        suffix = ".parquet" if fmt == "parquet" else ".tar"
        files = sorted(p.name for p in (tmp_path / fmt / "train").iterdir())
        assert files == [f"shard-0000{s}-of-00002-0000{p}{suffix}" for s, p in ((0, 0), (1, 0), (1, 1))]
        loaded = _rows(load_corpus(tmp_path / fmt))
        assert [row["video_id"] for row in loaded] == [row["video_id"] for row in arrow]
        for row in loaded:
            expected = by_id[row["video_id"]]
            assert row["video"] == expected["video"]
            assert row["segments"] == expected["segments"]
            assert row["duration"] == pytest.approx(expected["duration"])
        streamed = _rows(load_corpus(tmp_path / fmt, streaming=True))
        assert [row["video_id"] for row in streamed] == [row["video_id"] for row in arrow]
        assert [row["video"] for row in streamed] == [row["video"] for row in arrow]


def test_caption_builder_shards_with_the_launcher_env(tmp_path, monkeypatch):
    videos = tmp_path / "clips"
    lines = []
    for k in range(4):
        make_video(videos / f"c{k}.mp4", level=30 * k)
        lines.append(json.dumps({"video": f"clips/c{k}.mp4", "caption": f"caption {k}"}))
    lines.insert(2, "not json")
    (tmp_path / "meta.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    one = build_caption_corpus(tmp_path / "meta.jsonl", tmp_path / "out" / "one", output_format="parquet")
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun / accelerate launch set in each process
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        argv = ["--metadata", str(tmp_path / "meta.jsonl"), "--output", str(tmp_path / "out" / "two"),
                "--format", "parquet"]
        assert caption_corpus_main(argv) == 0
    monkeypatch.delenv("WORLD_SIZE")
    assert one.num_rows == {"train": 4} and [m.reason for m in one.skipped] == ["bad_row"]
    assert _rows(load_corpus(tmp_path / "out" / "two")) == _rows(load_corpus(tmp_path / "out" / "one"))


def test_a_moved_corpus_loads_and_batches_the_same(transcript_folder, tmp_path):
    from modeling_tvtsv2.data.collator import TVTSv2PretrainingCollator
    from modeling_tvtsv2.tokenization_tvtsv2 import build_clip_tokenizer

    machine_a = tmp_path / "machine_a"
    shutil.copytree(transcript_folder, machine_a / "videos")
    build_transcript_corpus(machine_a / "videos", machine_a / "corpus")  # string paths, relative
    build_transcript_corpus(machine_a / "videos", machine_a / "shards", output_format="parquet")
    collator = TVTSv2PretrainingCollator(build_clip_tokenizer(), num_frames=2, image_size=32, patch_size=16,
                                         num_transcripts=2, training=False)
    before = {name: load_corpus_split(str(machine_a / name), ("train",), argument="transcript_dataset")
              for name in ("corpus", "shards")}
    batches = {name: collator([dataset[i] for i in range(len(dataset))]) for name, dataset in before.items()}
    machine_b = tmp_path / "elsewhere" / "machine_b"
    shutil.move(str(machine_a), str(machine_b))
    for name in ("corpus", "shards"):
        moved = load_corpus_split(str(machine_b / name), ("train",), argument="transcript_dataset")
        assert moved[0]["video_id"] == "v0"
        if name == "corpus":
            assert moved[0]["video"] == str(machine_b / "videos" / "v0.mp4")  # resolved against the new folder
        batch = collator([moved[i] for i in range(len(moved))])
        assert batch["pixel_values_videos"].shape[0] == 5
        assert torch.equal(batch["pixel_values_videos"], batches[name]["pixel_values_videos"])
        assert torch.equal(batch["input_ids"], batches[name]["input_ids"])
    assert torch.equal(batches["corpus"]["pixel_values_videos"], batches["shards"]["pixel_values_videos"])
    # --streaming over the moved saved corpus: the same resolved paths, row by row
    from modeling_tvtsv2.pretraining.streaming import streamed_corpus

    moved = load_corpus_split(str(machine_b / "corpus"), ("train",), argument="transcript_dataset")
    stream = streamed_corpus(moved, 2)
    assert stream.features == moved.features  # the corpus kind is read from them
    streamed = list(stream)
    assert sorted(row["video"] for row in streamed) == sorted(moved[i]["video"] for i in range(len(moved)))
    assert all(Path(row["video"]).is_file() for row in streamed)


# --------------------------------------------------------------------------------------------------------------
# WebDataset tars made elsewhere (video2dataset's layout)
# --------------------------------------------------------------------------------------------------------------


def _tar(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_webdataset_tars_made_elsewhere_load_as_corpora(tmp_path):
    clips = [make_video(tmp_path / "src" / f"{k}.mp4", level=40 * k).read_bytes() for k in range(3)]
    # Captions, as video2dataset writes them: KEY.mp4, KEY.txt, KEY.json (its own metadata keys).
    members = {}
    for k in range(3):  # a sample's members are consecutive in the tar
        members[f"00000000{k}.mp4"] = clips[k]
        members[f"00000000{k}.txt"] = f"a clip number {k}".encode()
        members[f"00000000{k}.json"] = json.dumps({"key": f"00000000{k}", "url": f"https://x/{k}.mp4",
                                                  "status": "success", "duration": 2.0}).encode()
    _tar(tmp_path / "captions" / "train" / "00000.tar", members)
    captions = load_corpus(tmp_path / "captions")
    assert captions.column_names == ["video", "video_id", "caption", "duration"]
    assert [row["caption"] for row in captions] == [f"a clip number {k}" for k in range(3)]
    assert [row["video_id"] for row in captions] == [f"00000000{k}" for k in range(3)]
    assert [row["video"]["bytes"] for row in captions] == clips and captions[0]["duration"] == 2.0

    # Transcripts: KEY.mp4 + KEY.srt (+ a JSON without timing); through the training data path, and streamed.
    members = {}
    for k in range(3):
        members[f"clip{k}.mp4"] = clips[k]
        members[f"clip{k}.srt"] = SRT.replace("hello", f"hello{k}").encode()
        members[f"clip{k}.json"] = json.dumps({"video_id": f"yt_{k}"}).encode()
    _tar(tmp_path / "transcripts" / "train" / "shard-0.tar", members)
    loaded = load_corpus_split(str(tmp_path / "transcripts"), ("train",), argument="transcript_dataset")
    streamed = list(load_corpus(tmp_path / "transcripts", streaming=True))
    for rows in (list(loaded), streamed):
        assert [row["video_id"] for row in rows] == ["yt_0", "yt_1", "yt_2"]
        assert [s["text"] for s in rows[1]["segments"]] == ["hello1 there", "general kenobi"]
        assert rows[1]["segments"][0]["start"] == pytest.approx(0.2)
        assert bytes(rows[2]["video"]["bytes"]) == clips[2]
        assert np.isnan(rows[0]["duration"])  # unknown: the collator probes the file


# --------------------------------------------------------------------------------------------------------------
# prepare-videos: two shards equal one
# --------------------------------------------------------------------------------------------------------------


def test_prepare_videos_two_shards_equal_one(transcript_folder, tmp_path, capsys):
    settings = ["--short_side", "16", "--max_fps", "none"]
    assert prepare_main(["--input", str(transcript_folder), "--output", str(tmp_path / "one"), *settings]) == 0
    for index in ("1", "0"):
        argv = ["--input", str(transcript_folder), "--output", str(tmp_path / "two"), *settings,
                "--shard-index", index, "--num-shards", "2"]
        assert prepare_main(argv) == 0
        if index == "1":
            assert not (tmp_path / "two" / REPORT_NAME).exists()  # not every shard is done yet
    one = json.loads((tmp_path / "one" / REPORT_NAME).read_text())
    two = json.loads((tmp_path / "two" / REPORT_NAME).read_text())
    assert two["shard"] == {"index": 0, "count": 2} and two["counts"] == one["counts"]
    assert [r["input"] for r in two["transcoded"]] == [r["input"] for r in one["transcoded"]]
    assert [r["input"] for r in two["failed"]] == [r["input"] for r in one["failed"]] == [
        str(transcript_folder / "broken.mp4")]
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    files.remove(Path(REPORT_NAME))
    for name in files:
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    shard_reports = sorted(p.name for p in (tmp_path / "two").glob("prepare_videos_report.shard-*.json"))
    assert shard_reports == [f"prepare_videos_report.shard-0000{i}-of-00002.json" for i in (0, 1)]


def test_prepare_videos_corpus_input_shards_write_a_parquet_copy(transcript_folder, tmp_path):
    build_transcript_corpus(transcript_folder, tmp_path / "corpus", embed_videos=True)
    for index in (0, 1):
        report = prepare_videos(tmp_path / "corpus", tmp_path / "out", settings=_small(), progress=False,
                                shard_index=index, num_shards=2, corpus_format="parquet")
    assert report.complete and len(report.transcoded) == 5
    copy = _rows(load_corpus(tmp_path / "out" / "corpus"))
    assert [row["video_id"] for row in copy] == [f"v{k}" for k in range(5)]
    assert copy[3]["video"] == (tmp_path / "out" / "videos" / "v3.mp4").read_bytes()
    assert not list((tmp_path / "out" / "videos").glob(".embedded*"))


def _small():
    from modeling_tvtsv2.data.prepare_videos import TranscodeSettings

    return TranscodeSettings(short_side=16, max_fps=None)


# --------------------------------------------------------------------------------------------------------------
# extract: two jobs equal one
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_extract_two_jobs_equal_one(transcript_folder, tmp_path, capsys):
    from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
    from modeling_tvtsv2.cli import main as cli_main
    from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor

    torch.manual_seed(0)
    TVTSv2Model(TVTSv2Config.from_preset("tiny")).save_pretrained(tmp_path / "model")
    TVTSv2Processor.from_defaults(image_size=64, num_frames=2).save_pretrained(tmp_path / "model")
    common = ["extract", "--model", str(tmp_path / "model"), "--input", str(transcript_folder), "--shard-size", "2",
              "--num-workers", "0", "--no-progress"]
    assert cli_main([*common, "--output", str(tmp_path / "one")]) == 0
    assert cli_main([*common, "--output", str(tmp_path / "two"), "--shard-index", "1", "--num-shards", "2"]) == 0
    assert "the job that finishes last merges" in capsys.readouterr().out
    assert not (tmp_path / "two").exists()
    assert cli_main([*common, "--output", str(tmp_path / "two"), "--shard-index", "0", "--num-shards", "2"]) == 0
    one = datasets.load_from_disk(str(tmp_path / "one")).with_format("numpy")[:]
    two = datasets.load_from_disk(str(tmp_path / "two")).with_format("numpy")[:]
    assert list(two["video_id"]) == list(one["video_id"]) and list(two["row"]) == list(one["row"])
    np.testing.assert_array_equal(two["video_embedding"], one["video_embedding"])
    assert not (tmp_path / "two.partial").exists()

    # A corpus written as Parquet shards is an input too (embedded videos: the same pixels, the same embeddings).
    build_transcript_corpus(transcript_folder, tmp_path / "shards", output_format="parquet", rows_per_file=2)
    assert cli_main([*common[:4], str(tmp_path / "shards"), *common[5:], "--output", str(tmp_path / "three")]) == 0
    three = datasets.load_from_disk(str(tmp_path / "three")).with_format("numpy")[:]
    assert list(three["video_id"]) == [f"v{k}" for k in range(5)]
    position = {video_id: k for k, video_id in enumerate(one["video_id"])}
    same = one["video_embedding"][[position[f"v{k}.mp4"] for k in range(5)]]
    np.testing.assert_allclose(three["video_embedding"], same, atol=1e-6)


def test_bad_shard_flags_are_one_line_errors(transcript_folder, tmp_path, capsys):
    from modeling_tvtsv2.cli import main as cli_main

    commands = [
        lambda: transcript_corpus_main(["--videos", str(transcript_folder), "--output", str(tmp_path / "c"),
                                        "--shard_index", "2", "--num_shards", "2"]),
        lambda: prepare_main(["--input", str(transcript_folder), "--output", str(tmp_path / "p"),
                              "--shard_index", "0"]),
        lambda: cli_main(["extract", "--model", str(tmp_path / "no-model"), "--input", str(transcript_folder),
                          "--output", str(tmp_path / "e"), "--num-shards", "0", "--shard-index", "0"]),
    ]
    for command in commands:
        assert command() == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "shard" in err[0], err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_extract_streaming_two_jobs_read_only_their_part_and_equal_one(transcript_folder, tmp_path):
    from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
    from modeling_tvtsv2.cli import main as cli_main
    from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor

    torch.manual_seed(0)
    TVTSv2Model(TVTSv2Config.from_preset("tiny")).save_pretrained(tmp_path / "model")
    TVTSv2Processor.from_defaults(image_size=64, num_frames=2).save_pretrained(tmp_path / "model")
    # A "remote" dataset: Parquet files with embedded videos, read with load_dataset(..., streaming=True).
    build_transcript_corpus(transcript_folder, tmp_path / "hub", output_format="parquet", rows_per_file=1)
    common = ["extract", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "hub"), "--num-workers", "0",
              "--no-progress", "--shard-size", "2"]
    assert cli_main([*common, "--output", str(tmp_path / "one")]) == 0  # not streamed
    streamed = [*common, "--streaming", "--output", str(tmp_path / "two"), "--num-shards", "2"]
    assert cli_main([*streamed, "--shard-index", "0"]) == 0
    part = datasets.load_from_disk(str(tmp_path / "two.stream" / "part-shard-00000-of-00002"))
    assert len(part) < 5  # job 0 read only its part of the stream
    assert cli_main([*streamed, "--shard-index", "1"]) == 0  # the last job merges
    one = datasets.load_from_disk(str(tmp_path / "one")).with_format("numpy")[:]
    two = datasets.load_from_disk(str(tmp_path / "two")).with_format("numpy")[:]
    assert sorted(two["video_id"]) == sorted(one["video_id"]) == [f"v{k}" for k in range(5)]
    assert sorted(two["row"]) == list(range(5)) and not (tmp_path / "two.stream").exists()
    position = {video_id: k for k, video_id in enumerate(two["video_id"])}
    order = [position[video_id] for video_id in one["video_id"]]
    np.testing.assert_allclose(two["video_embedding"][order], one["video_embedding"], atol=1e-6)
    assert json.loads((tmp_path / "two" / "extraction.json").read_text())["settings"]["streamed_from"] == str(
        tmp_path / "hub")


def test_shard_files_validation_split_is_the_same_for_any_number_of_shards(transcript_folder, tmp_path):
    one = build_transcript_corpus(transcript_folder, tmp_path / "one", output_format="webdataset", validation_size=3,
                                  seed=1)
    for index in (0, 1, 2):
        three = build_transcript_corpus(transcript_folder, tmp_path / "three", output_format="webdataset",
                                        validation_size=3, seed=1, shard_index=index, num_shards=3)
    assert three.num_rows == one.num_rows and sum(one.num_rows.values()) == 5
    assert set(one.num_rows) == {"train", "validation"} and min(one.num_rows.values()) > 0
    for split in one.num_rows:
        assert [row["video_id"] for row in load_corpus(tmp_path / "three", split)] == [
            row["video_id"] for row in load_corpus(tmp_path / "one", split)]
