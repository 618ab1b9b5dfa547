"""Indexes made by `tvtsv2 extract` are used only with the model that made them, never hold NaN rows, and a damaged
one is one `error:` line (issue 21, items 6-9 and 11)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
from modeling_tvtsv2.cli import main as cli_main
from modeling_tvtsv2.evaluation.extract import ExtractionError, model_fingerprint
from modeling_tvtsv2.evaluation.linear_probe import features_from_extractions
from modeling_tvtsv2.evaluation.search import VideoIndex, search
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor


DATA = Path(__file__).parent / "data"


def _save_model(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    TVTSv2Model(TVTSv2Config.from_preset("tiny")).save_pretrained(folder)
    TVTSv2Processor.from_defaults(image_size=64, num_frames=4).save_pretrained(folder)
    return folder


def _extract(model: Path, videos: Path, output: Path, *extra: str) -> int:
    return cli_main(["extract", "--model", str(model), "--input", str(videos), "--output", str(output),
                     "--num-workers", "0", "--no-progress", *extra])  # fmt: skip


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("integrity")
    videos = root / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(DATA / ("obama_speech.mp4" if name == "a.mp4" else "park.mp4"), videos / name)
    (videos / "c.mp4").write_bytes((DATA / "park.mp4").read_bytes()[:3000])  # unreadable, sorted last
    model = _save_model(root / "model", seed=0)
    # --shard-size 2: the last shard holds only the unreadable c.mp4 (item 9: an IndexError before)
    assert _extract(model, videos, root / "index", "--shard-size", "2") == 0
    return {"root": root, "videos": videos, "model": model, "index": root / "index"}


def test_a_last_shard_of_only_unreadable_videos_is_fine_and_reported(made):
    manifest = json.loads((made["index"] / "extraction.json").read_text())
    assert manifest["num_rows"] == 2 and [entry["video_id"] for entry in manifest["skipped"]] == ["c.mp4"]
    assert _extract(made["model"], made["videos"], made["index"], "--shard-size", "2") == 0  # rerun: complete


def test_fingerprint_depends_on_the_weights_not_on_threads_or_processes(made):
    model = TVTSv2Model.from_pretrained(made["model"])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # what a 2-process accelerate launch gives each process
        one = model_fingerprint(model)
        torch.set_num_threads(2)
        two = model_fingerprint(model)
    finally:
        torch.set_num_threads(threads)
    assert one == two == json.loads((made["index"] / "extraction.json").read_text())["settings"]["model_fingerprint"]
    with torch.no_grad():
        model.visual_projection.weight[0, 0] += 1e-6
    assert model_fingerprint(model) != one


def test_search_refuses_another_model_at_the_recorded_path(made, tmp_path, capsys):
    index = tmp_path / "index"
    shutil.copytree(made["index"], index)
    manifest = json.loads((index / "extraction.json").read_text())
    moved = _save_model(tmp_path / "model", seed=0)
    manifest["settings"]["model"] = str(moved)
    (index / "extraction.json").write_text(json.dumps(manifest))
    assert len(search(index, "a park", top_k=1)) == 1  # the same weights elsewhere: fine
    _save_model(moved, seed=1)  # another model now sits at the recorded path
    assert cli_main(["search", "--index", str(index), "a park"]) == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(error) == 1 and "is not the model that made --index" in error[0]
    assert cli_main(["search", "--index", str(index), "--model", str(moved), "a park"]) == 2
    assert f"--model {moved} is not the model that made" in capsys.readouterr().err


def test_linear_probe_refuses_features_of_two_models(made, tmp_path):
    other = _save_model(tmp_path / "other", seed=1)
    assert _extract(other, made["videos"], tmp_path / "other_index") == 0
    with pytest.raises(ExtractionError, match="different models"):
        features_from_extractions({"train": str(made["index"]), "test": str(tmp_path / "other_index")})


def test_nan_rows_are_skipped_at_search_with_a_warning(made, tmp_path, caplog):
    index = tmp_path / "index"
    dataset = datasets.load_from_disk(str(made["index"]), keep_in_memory=True)  # no cache files in the fixture
    embeddings = np.array(dataset["video_embedding"], dtype=np.float32)
    embeddings[0] = np.nan
    damaged = dataset.remove_columns("video_embedding").add_column("video_embedding", embeddings.tolist())
    damaged = damaged.cast_column("video_embedding", dataset.features["video_embedding"])
    damaged.save_to_disk(str(index))
    shutil.copy(made["index"] / "extraction.json", index / "extraction.json")
    hits = search(index, "a park", top_k=2)
    assert [hit.video_id for hit in hits] == ["b.mp4"] and np.isfinite(hits[0].score)
    assert "non-finite" in caplog.text and VideoIndex(index).hit(0, 1.0).video_id == "b.mp4"


def test_nan_embeddings_are_rejected_at_extraction(made, tmp_path):
    model = TVTSv2Model.from_pretrained(made["model"]).eval()
    calls: list[int] = []

    def overflow_on_the_first_video(module, inputs, output):  # as float16 can: that clip's embedding is NaN
        calls.append(1)
        return output * float("nan") if len(calls) == 1 else output

    model.visual_projection.register_forward_hook(overflow_on_the_first_video)
    from modeling_tvtsv2.evaluation.extract import extract_features, open_video_table

    processor = TVTSv2Processor.from_pretrained(made["model"])
    report = extract_features(model, processor, open_video_table(made["videos"]), tmp_path / "index",
                              batch_size=1, num_workers=0, show_progress=False)  # fmt: skip
    reasons = {entry["video_id"]: entry["reason"] for entry in report.skipped}
    assert "not finite" in reasons["a.mp4"] and report.num_rows == 1
    stored = datasets.load_from_disk(str(tmp_path / "index"))
    assert stored["video_id"] == ["b.mp4"] and np.isfinite(np.array(stored["video_embedding"])).all()


@pytest.mark.parametrize("damage", ["not_json", "a_list", "no_settings", "truncated_arrow"])
def test_a_damaged_index_is_one_error_line(made, tmp_path, capsys, damage):
    index = tmp_path / "index"
    shutil.copytree(made["index"], index)
    manifest = index / "extraction.json"
    if damage == "not_json":
        manifest.write_text("{ not json")
    elif damage == "a_list":
        manifest.write_text("[1, 2]")
    elif damage == "no_settings":
        manifest.write_text('{"complete": true}')
    else:
        arrow = next(index.glob("data-*.arrow"))
        arrow.write_bytes(arrow.read_bytes()[:200])
    assert cli_main(["search", "--index", str(index), "a park"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"error: --index {index}") and "damaged" in error[0]


def test_a_file_name_that_is_not_utf8_is_extracted_and_prepared(made, tmp_path):
    # (item 10) b"caf\xe9.mp4" (Latin-1) beside a good file
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(DATA / "park.mp4", videos / "good.mp4")
    shutil.copy(DATA / "park.mp4", os.path.join(os.fsencode(videos), b"caf\xe9.mp4"))
    assert _extract(made["model"], videos, tmp_path / "index") == 0
    assert datasets.load_from_disk(str(tmp_path / "index"))["video_id"] == ["caf\\xe9.mp4", "good.mp4"]
    from modeling_tvtsv2.data.prepare_videos import prepare_videos

    report = prepare_videos(videos, tmp_path / "prepared", progress=False)
    assert len(report.transcoded) == 2 and not report.failed
    saved = json.loads((tmp_path / "prepared" / "prepare_videos_report.json").read_text(encoding="utf-8"))
    assert sorted(os.fsencode(entry["input"]).rsplit(b"/", 1)[1] for entry in saved["transcoded"]) == [
        b"caf\xe9.mp4", b"good.mp4"
    ]


class _ThreadWitness(torch.Tensor):
    """Features that note torch's thread count whenever an operation uses them (PyTorch's subclass protocol)."""

    seen: set[int] = set()

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.seen.add(torch.get_num_threads())
        return super().__torch_function__(func, types, args, kwargs or {})


def test_the_probe_fit_runs_on_one_thread_and_restores_the_callers_count():
    # (item 14) a small full-batch L-BFGS problem on every core of a busy machine ran ~10x slower per step
    from modeling_tvtsv2.evaluation.linear_probe import fit_logistic_regression

    generator = torch.Generator().manual_seed(0)
    features = torch.randn(40, 4, generator=generator, dtype=torch.float64)
    labels = (features[:, 0] > 0).long()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _ThreadWitness.seen.clear()
        probe = fit_logistic_regression(features.as_subclass(_ThreadWitness), labels, 2, 1e-2, max_iter=20)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert probe.iterations > 0 and _ThreadWitness.seen == {1}
