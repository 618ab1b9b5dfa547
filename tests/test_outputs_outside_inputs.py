"""No tool writes over, around or inside its inputs, nor outside its output (issue 21, items 1-3).

1. An output that is, contains or lies inside an input is refused whatever the flags, by every tool with an input
   and an output (extract, prepare-videos, the corpus builders, export, training's output_dir).
2. Paths derived from data (a corpus's ``video_id``) stay inside the output, or the row is refused and reported.
3. ``clip.avi`` and ``clip.mp4`` side by side do not share one prepared file (nor does ``clip.srt`` follow the
   wrong one).
"""

import json
import os
from pathlib import Path

import av
import datasets
import numpy as np
import pytest

from modeling_tvtsv2.data.corpus_builders import build_transcript_corpus
from modeling_tvtsv2.data.prepare_videos import main as prepare_videos_main
from modeling_tvtsv2.data.prepare_videos import prepare_videos
from modeling_tvtsv2.evaluation.extract import main as extract_main
from modeling_tvtsv2.pretraining.run import main as train_main
from modeling_tvtsv2.tools.hub_export import main as export_main
from modeling_tvtsv2.tools.output_folders import OutputFolderError, check_output_folder


def _tiny_video(path: Path, codec: str = "mpeg4", frames: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=4)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.full((32, 32, 3), 40 * i, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path) -> Path:
    """A user's folder: a script, a folder of videos with a transcript."""
    (tmp_path / "train.py").write_text("print('my work')\n")
    _tiny_video(tmp_path / "videos" / "a.mp4")
    (tmp_path / "videos" / "a.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    return tmp_path


def _error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize("where", ["same", "parent", "inside"])
def test_extract_never_replaces_or_writes_into_its_input(project, capsys, where):
    videos = project / "videos"
    output = {"same": videos, "parent": project, "inside": videos / "features"}[where]
    before = _snapshot(project)
    status = extract_main(["--model", "tiny-model-never-loaded", "--input", str(videos), "--output", str(output),
                           "--overwrite"])  # fmt: skip
    assert status == 2
    line = _error_line(capsys)
    reason = {"same": "is also an input", "parent": "contains", "inside": "lies inside"}[where]
    assert str(output) in line and reason in line
    assert _snapshot(project) == before


def test_prepare_videos_refuses_output_inside_input_whatever_the_flags(project, capsys):
    before = _snapshot(project)
    status = prepare_videos_main(["--input", str(project), "--output", str(project / "prepared"), "--overwrite"])
    assert status == 2 and "lies inside" in _error_line(capsys)
    assert _snapshot(project) == before and not (project / "prepared").exists()


def test_corpus_builder_refuses_output_inside_the_videos_folder(project):
    with pytest.raises(OutputFolderError, match="lies inside"):
        build_transcript_corpus(project / "videos", project / "videos" / "corpus", overwrite=True)
    assert not (project / "videos" / "corpus").exists()


def test_export_refuses_output_inside_the_model_folder(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert export_main(["--model", str(model), "--output", str(model / "hub"), "--overwrite"]) == 2
    assert "lies inside" in _error_line(capsys)
    assert sorted(p.name for p in model.iterdir()) == ["config.json"]


def test_training_output_dir_may_not_be_a_corpus_whatever_overwrite_output_dir_says(project, capsys):
    corpus = project / "corpus"
    corpus.mkdir()
    (corpus / "dataset_dict.json").write_text('{"splits": ["train"]}')
    status = train_main(["--transcript_dataset", str(corpus), "--output_dir", str(corpus),
                         "--overwrite_output_dir", "true"])  # fmt: skip
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the "--model tiny is a preset" warning
    assert status == 2 and last.startswith("error: --output_dir") and "is also an input" in last
    assert (corpus / "dataset_dict.json").exists()


def test_a_link_to_the_input_is_the_input(project):
    link = project / "link"
    link.symlink_to(project / "videos", target_is_directory=True)
    with pytest.raises(OutputFolderError, match="is also an input"):
        check_output_folder(link, overwrite=True, inputs=[project / "videos"])


def test_paths_from_data_stay_inside(tmp_path):
    from modeling_tvtsv2.tools.output_folders import path_inside

    (tmp_path / "out").mkdir()
    assert path_inside(tmp_path / "out", "a/b.mp4") == tmp_path / "out" / "a" / "b.mp4"
    (tmp_path / "out" / "escape").symlink_to(tmp_path, target_is_directory=True)
    for hostile in ("../x.mp4", "a/../../x.mp4", str(tmp_path / "x.mp4"), "escape/x.mp4", "", "."):
        with pytest.raises(ValueError):
            path_inside(tmp_path / "out", hostile)


def test_prepare_videos_refuses_corpus_rows_whose_id_leads_outside_the_output(tmp_path):
    video = str(_tiny_video(tmp_path / "src" / "v.mp4"))
    corpus = datasets.Dataset.from_dict({"video": [video, video], "video_id": ["../../escaped", "good"]})
    corpus.save_to_disk(str(tmp_path / "corpus"))
    victim = tmp_path / "escaped.mp4"  # where ../../escaped lands from OUT/videos
    victim.write_text("not an input of the run")
    report = prepare_videos(tmp_path / "corpus", tmp_path / "run" / "out", overwrite=True, progress=False)
    assert victim.read_text() == "not an input of the run"
    assert [Path(r["output"]).name for r in report.transcoded] == ["good.mp4"]
    assert len(report.failed) == 1 and "../../escaped" in report.failed[0]["reason"]
    saved = json.loads((tmp_path / "run" / "out" / "prepare_videos_report.json").read_text())
    assert len(saved["failed"]) == 1
    prepared = datasets.load_from_disk(str(tmp_path / "run" / "out" / "corpus"))
    assert prepared["video_id"] == ["good"]
    outside = [p for p in tmp_path.rglob("*.mp4") if "run" not in p.parts and p not in (victim, Path(video))]
    assert outside == []


def test_prepare_videos_does_not_let_two_inputs_share_one_output(tmp_path):
    source = tmp_path / "in"
    _tiny_video(source / "clip.avi")
    _tiny_video(source / "clip.mp4", frames=6)
    (source / "clip.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nwhich one\n")
    _tiny_video(source / "other.mp4")
    report = prepare_videos(source, tmp_path / "out", progress=False)
    assert sorted(os.path.basename(r["input"]) for r in report.failed) == ["clip.avi", "clip.mp4"]
    assert all("rename" in r["reason"] for r in report.failed)
    assert [os.path.basename(r["output"]) for r in report.transcoded] == ["other.mp4"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["other.mp4", "prepare_videos_report.json"]


def test_a_misspelt_freeze_schedule_is_one_line_naming_the_flag_and_the_valid_names(tmp_path, capsys):
    # (item 12) checked before the demo corpus is built or a model is loaded
    status = train_main(["--freeze-schedule", "papr", "--output_dir", str(tmp_path / "run"),
                         "--demo_dir", str(tmp_path / "demo")])  # fmt: skip
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and lines[-1].startswith("error: --freeze_schedule 'papr'") and "paper" in lines[-1]
    assert not (tmp_path / "demo").exists()


def test_prepare_videos_refuses_an_input_link_into_its_output(tmp_path):
    source = tmp_path / "in"
    _tiny_video(source / "b.mp4")
    first = prepare_videos(source, tmp_path / "out", progress=False)
    assert len(first.transcoded) == 1
    (source / "c.mp4").symlink_to(tmp_path / "out" / "b.mp4")  # a prepared file fed back as an input
    again = prepare_videos(source, tmp_path / "out", overwrite=True, progress=False)
    assert [os.path.basename(r["input"]) for r in again.failed] == ["c.mp4"]
    assert "inside the output folder" in again.failed[0]["reason"] and not (tmp_path / "out" / "c.mp4").exists()
    assert [os.path.basename(r["input"]) for r in again.transcoded] == ["b.mp4"]
