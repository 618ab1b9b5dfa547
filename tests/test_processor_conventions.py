"""transformers conventions of `TVTSv2Processor` / `TVTSv2VideoProcessor` (issue 9, items 1, 2, 3, 6, 12)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoProcessor
from transformers.models.auto.video_processing_auto import AutoVideoProcessor

import modeling_tvtsv2  # noqa: F401 - registers the Auto classes
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor, build_clip_tokenizer
from modeling_tvtsv2.video_processing_tvtsv2 import TVTSv2VideoProcessor


DATA = Path(__file__).parent / "data"
PARK = DATA / "park.mp4"


def _json_files(folder: Path) -> dict[str, object]:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def _has_key(value, key: str) -> bool:
    if isinstance(value, dict):
        return key in value or any(_has_key(v, key) for v in value.values())
    if isinstance(value, list):
        return any(_has_key(v, key) for v in value)
    return False


# ---- item 1: saving has no side effects ------------------------------------------------------------------------


def test_processor_save_writes_no_code_and_round_trips_identically(tmp_path):
    processor = TVTSv2Processor.from_defaults(image_size=32, num_frames=2)
    before = processor.to_dict()
    processor.save_pretrained(tmp_path / "first")
    assert processor.to_dict() == before  # the in-memory processor is unchanged by saving
    assert not list((tmp_path / "first").glob("*.py"))
    first = _json_files(tmp_path / "first")
    assert not any(_has_key(data, "auto_map") for data in first.values()), "auto_map written by a plain save"
    reloaded = AutoProcessor.from_pretrained(tmp_path / "first")
    assert type(reloaded) is TVTSv2Processor
    reloaded.save_pretrained(tmp_path / "second")
    assert _json_files(tmp_path / "second") == first
    assert not list((tmp_path / "second").glob("*.py"))


def test_video_processor_save_writes_no_code(tmp_path):
    TVTSv2VideoProcessor(image_size=32, num_frames=2).save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.py"))
    assert not any(_has_key(data, "auto_map") for data in _json_files(tmp_path).values())
    assert type(AutoVideoProcessor.from_pretrained(tmp_path)) is TVTSv2VideoProcessor


def test_hub_export_still_registers_remote_code_and_leaves_no_trace(tmp_path):
    from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
    from modeling_tvtsv2.hub_export import save_hub_folder

    torch.manual_seed(0)
    model = TVTSv2Model(TVTSv2Config.from_preset("tiny")).eval()
    processor = TVTSv2Processor.from_defaults(image_size=64, num_frames=4)
    hub = save_hub_folder(model, processor, tmp_path / "hub")
    processor_config = json.loads((hub / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_tvtsv2.TVTSv2Processor"
    video_map = processor_config["video_processor"]["auto_map"]
    assert video_map["AutoVideoProcessor"] == "video_processing_tvtsv2.TVTSv2VideoProcessor"
    assert (hub / "processing_tvtsv2.py").exists() and (hub / "video_processing_tvtsv2.py").exists()
    # the export's registration is temporary: a later ordinary save is clean again
    processor.save_pretrained(tmp_path / "plain")
    assert not list((tmp_path / "plain").glob("*.py"))
    assert not any(_has_key(data, "auto_map") for data in _json_files(tmp_path / "plain").values())


# ---- item 3: text length comes from the tokenizer ----------------------------------------------------------------


def test_text_length_comes_from_the_tokenizer():
    video_processor = TVTSv2VideoProcessor(image_size=32, num_frames=2)
    processor = TVTSv2Processor(video_processor=video_processor, tokenizer=build_clip_tokenizer(model_max_length=16))
    assert processor(text="a photo of a cat")["input_ids"].shape == (1, 16)
    long = " ".join(["word"] * 40)
    ids = processor(text=long)["input_ids"][0].tolist()
    assert len(ids) == 16 and ids[-1] == 49407  # truncated at the tokenizer's length, end token kept last
    assert processor(text="a cat", max_length=20)["input_ids"].shape == (1, 20)  # the call still wins
    default = TVTSv2Processor.from_defaults(image_size=32, num_frames=2)
    assert default(text="a cat")["input_ids"].shape == (1, 77)


def test_tokenizer_length_survives_save_and_reload(tmp_path):
    video_processor = TVTSv2VideoProcessor(image_size=32, num_frames=2)
    processor = TVTSv2Processor(video_processor=video_processor, tokenizer=build_clip_tokenizer(model_max_length=24))
    processor(text="a cat", max_length=40)  # a call with another length must not leak into the saved tokenizer
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert reloaded(text="a cat")["input_ids"].shape == (1, 24)


# ---- item 6: positional misuse ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "video",
    [str(PARK), "clip.mp4", PARK, PARK.read_bytes(), np.zeros((2, 8, 8, 3), np.uint8), {"path": "clip.mp4"}],
    ids=["existing-path", "file-name", "pathlib", "bytes", "array", "datasets-cell"],
)
def test_video_given_as_text_is_rejected(video):
    processor = TVTSv2Processor.from_defaults(image_size=32, num_frames=2)
    with pytest.raises(ValueError, match="first positional argument of TVTSv2Processor is text"):
        processor(video)


def test_captions_that_mention_files_are_still_text():
    processor = TVTSv2Processor.from_defaults(image_size=32, num_frames=2)
    out = processor(["a man opens video.mp4 on his laptop", "cooking"])
    assert out["input_ids"].shape == (2, 77)
