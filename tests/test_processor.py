"""`TVTSv2Processor`: text layouts, mixed video batches, save/load through the Auto classes, end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoProcessor, AutoTokenizer
from transformers.models.auto.video_processing_auto import AutoVideoProcessor

import modeling_tvtsv2  # noqa: F401 - registers the Auto classes
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor
from modeling_tvtsv2.tokenization_tvtsv2 import build_clip_tokenizer
from modeling_tvtsv2.video_processing_tvtsv2 import TVTSv2VideoProcessor
from modeling_tvtsv2.video_reading_tvtsv2 import read_video
from modeling_tvtsv2.video_transforms_tvtsv2 import preprocess_frames


DATA = Path(__file__).parent / "data"
OBAMA = DATA / "obama_speech.mp4"
PARK = DATA / "park.mp4"
SOT, EOT = 49406, 49407
CAT = [SOT, 320, 1125, 539, 320, 2368, EOT]  # "a photo of a cat" (published CLIP ids)


@pytest.fixture(scope="module")
def processor() -> TVTSv2Processor:
    return TVTSv2Processor.from_defaults(image_size=64, num_frames=4)


def test_default_construction_is_offline_and_original():
    processor = TVTSv2Processor()
    assert isinstance(processor.video_processor, TVTSv2VideoProcessor)
    assert processor.video_processor.num_frames == 12
    assert processor.video_processor.size.shortest_edge == 268
    assert (processor.video_processor.crop_size.height, processor.video_processor.crop_size.width) == (224, 224)
    assert list(processor.video_processor.image_mean) == [0.485, 0.456, 0.406]
    assert len(processor.tokenizer) == 49408
    sized = TVTSv2Processor.from_defaults(image_size=336, num_frames=8)
    assert sized.video_processor.size.shortest_edge == 403 and sized.video_processor.num_frames == 8


def test_mixed_video_batch_with_k_transcripts(processor):
    clip = np.stack([np.full((50, 70, 3), i * 40, np.uint8) for i in range(2)])  # 2 frames, another size
    videos = [str(OBAMA), PARK.read_bytes(), clip]
    text = [
        ["today after two years of negotiations", "the united states", ""],
        ["a park", "people walking", "trees"],
        ["a grey frame", "a lighter frame", "the end"],
    ]
    output = processor(text=text, videos=videos, return_metadata=True)
    assert output["input_ids"].shape == (3, 3, 77)
    assert output["attention_mask"].shape == (3, 3, 77)
    assert output["pixel_values_videos"].shape == (3, 4, 3, 64, 64)
    assert output["input_ids"].dtype == torch.long and output["pixel_values_videos"].dtype == torch.float32
    # the empty transcript: start + end, then padding (end token) masked out
    assert output["input_ids"][0, 2, :2].tolist() == [SOT, EOT]
    assert output["attention_mask"][0, 2].tolist() == [1, 1] + [0] * 75
    # the nested layout keeps each video's transcripts together, in order
    flat = processor.tokenizer(
        [s for row in text for s in row], padding="max_length", truncation=True, max_length=77, return_tensors="pt"
    )["input_ids"]
    assert torch.equal(output["input_ids"].reshape(9, 77), flat)
    assert [m.total_num_frames for m in output["video_metadata"]] == [105, 17, 2]
    # pixels equal the documented pipeline: read_video (uniform) + eval transform
    frames, _ = read_video(OBAMA, 4)
    assert torch.equal(output["pixel_values_videos"][0], preprocess_frames(frames, image_size=64))


def test_text_layouts(processor):
    single = processor(text="a photo of a cat")
    assert single["input_ids"].shape == (1, 77) and single["input_ids"][0, :7].tolist() == CAT
    several = processor(text=["a photo of a cat", "a dog", ""])
    assert several["input_ids"].shape == (3, 77)
    assert set(several.keys()) == {"input_ids", "attention_mask"}
    long = processor(text="word " * 300)
    assert long["input_ids"].shape == (1, 77) and long["input_ids"][0, -1].item() == EOT
    videos_only = processor(videos=str(PARK))
    assert set(videos_only.keys()) == {"pixel_values_videos"}
    # N captions against B videos (retrieval): the counts need not match
    retrieval = processor(text=["a", "b", "c"], videos=[str(PARK), str(OBAMA)])
    assert retrieval["input_ids"].shape == (3, 77) and retrieval["pixel_values_videos"].shape[0] == 2
    as_lists = processor(text=[["a", "b"]], videos=str(PARK), return_tensors=None)
    assert len(as_lists["input_ids"]) == 1 and len(as_lists["input_ids"][0]) == 2


def test_text_layout_errors(processor):
    with pytest.raises(ValueError, match="same number of transcripts"):
        processor(text=[["a", "b"], ["c"]], videos=[str(PARK), str(PARK)])
    with pytest.raises(ValueError, match="2 videos"):
        processor(text=[["a"], ["b"]], videos=str(PARK))
    with pytest.raises(ValueError):
        processor(text=["a", ["b"]])
    with pytest.raises(ValueError):
        processor(text=[])
    with pytest.raises(ValueError):
        processor()


def test_video_options_pass_through(processor):
    output = processor(
        text=["x"], videos=str(OBAMA), num_frames=6, sampling="linspace", start=2.0, end=4.0, transform="extract",
        return_metadata=True,
    )  # fmt: skip
    assert output["pixel_values_videos"].shape == (1, 6, 3, 64, 64)
    meta = output["video_metadata"][0]
    assert 2.0 <= meta.timestamps[0] and meta.timestamps[-1] < 4.0
    generator = torch.Generator().manual_seed(0)
    a = processor(videos=str(OBAMA), sampling="random", transform="train", generator=generator)
    generator = torch.Generator().manual_seed(0)
    b = processor(videos=str(OBAMA), sampling="random", transform="train", generator=generator)
    assert torch.equal(a["pixel_values_videos"], b["pixel_values_videos"])


def test_save_load_round_trip_through_auto_classes(processor, tmp_path):
    before = processor(text=[["a photo of a cat", "b"]], videos=[str(PARK)])
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["processor_class"] == "TVTSv2Processor"
    assert saved["video_processor"]["video_processor_type"] == "TVTSv2VideoProcessor"
    assert saved["video_processor"]["num_frames"] == 4
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded, TVTSv2Processor)
    after = reloaded(text=[["a photo of a cat", "b"]], videos=[str(PARK)])
    for key in ("input_ids", "attention_mask", "pixel_values_videos"):
        assert torch.equal(before[key], after[key]), key
    video_processor = AutoVideoProcessor.from_pretrained(tmp_path)
    assert isinstance(video_processor, TVTSv2VideoProcessor)
    assert (video_processor.num_frames, video_processor.crop_size.height) == (4, 64)
    assert AutoTokenizer.from_pretrained(tmp_path)("a photo of a cat")["input_ids"] == CAT


def test_reload_keeps_context_77_after_a_shorter_call(tmp_path):
    # transformers pitfall: a fast tokenizer saved after a call with max_length=16 reloads with max_length=16
    processor = TVTSv2Processor.from_defaults(image_size=64, num_frames=4)
    assert processor(text="a long sentence " * 10, max_length=16)["input_ids"].shape == (1, 16)
    processor.save_pretrained(tmp_path)
    tokenizer_json = json.loads((tmp_path / "tokenizer.json").read_text())
    assert tokenizer_json["truncation"] is None and tokenizer_json["padding"] is None
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert reloaded.tokenizer.model_max_length == 77
    ids = reloaded(text="a long sentence " * 40)["input_ids"]
    assert ids.shape == (1, 77) and ids[0, -1].item() == EOT
    # A tokenizer saved with that state bypassing the processor reloads with max_length=16 as an init kwarg; in
    # transformers' documented order a tokenizer's init kwargs win over the processor's defaults (issue 20).
    tokenizer = build_clip_tokenizer()
    tokenizer("x", max_length=16, truncation=True, padding="max_length")
    tokenizer.save_pretrained(tmp_path / "stale")
    stale = TVTSv2Processor(tokenizer=AutoTokenizer.from_pretrained(tmp_path / "stale"))
    assert stale.tokenizer.init_kwargs["max_length"] == 16
    assert stale(text="a photo of a cat")["input_ids"].shape == (1, 16)
    assert stale(text="a photo of a cat", max_length=77)["input_ids"].shape == (1, 77)  # the call wins


def test_processor_and_model_end_to_end_on_a_real_clip(tmp_path):
    from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model

    config = TVTSv2Config(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
        vision_config={
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "image_size": 64, "patch_size": 16, "num_frames": 4,
        },
        projection_dim=16, num_frozen_text_layers=0,
    )  # fmt: skip
    torch.manual_seed(0)
    TVTSv2Model(config).save_pretrained(tmp_path)
    TVTSv2Processor.from_defaults(image_size=64, num_frames=4).save_pretrained(tmp_path)
    processor = AutoProcessor.from_pretrained(tmp_path)
    model = AutoModel.from_pretrained(tmp_path, dtype=torch.float32).eval()
    inputs = processor(text=[["today after two years of negotiations", "the united states"]], videos=str(OBAMA))
    with torch.no_grad():
        outputs = model(**inputs)
        video = model.get_video_features(pixel_values_videos=inputs["pixel_values_videos"]).pooler_output
        text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    assert video.shape == (1, 16) and torch.isfinite(video).all()
    assert text.pooler_output.shape == (1, 2, 16) and torch.isfinite(text.pooler_output).all()
    assert outputs.logits_per_video.shape == (1, 1) and torch.isfinite(outputs.logits_per_video).all()
