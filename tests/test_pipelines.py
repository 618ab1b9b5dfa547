"""`zero-shot-video-classification` and `video-feature-extraction` pipelines on real clips with the tiny model.

Reference values come from the processor and model called directly, never from the pipeline code.
"""

from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import pipeline

from modeling_tvtsv2 import TVTSv2Model
from modeling_tvtsv2.pipeline_tvtsv2 import (
    VideoFeatureExtractionPipeline,
    ZeroShotVideoClassificationPipeline,
    register_pipelines,
)
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor


DATA = Path(__file__).parent / "data"
PARK = DATA / "park.mp4"
SPEECH = DATA / "obama_speech.mp4"
LABELS = ["walking a dog", "giving a speech", "playing guitar", "cooking", "swimming"]


@pytest.fixture(scope="module")
def model(model_dir):
    return TVTSv2Model.from_pretrained(model_dir).eval()


@pytest.fixture(scope="module")
def processor(model_dir):
    return TVTSv2Processor.from_pretrained(model_dir)


def _direct_video_embedding(model, processor, video, **video_kwargs):
    with torch.no_grad():
        inputs = processor(videos=[video], return_tensors="pt", **video_kwargs)
        return model.get_video_features(pixel_values_videos=inputs["pixel_values_videos"]).pooler_output[0]


def _direct_scores(model, processor, video, labels, template="a person {}"):
    video_embed = F.normalize(_direct_video_embedding(model, processor, str(video)), dim=-1)
    with torch.no_grad():
        text = processor(text=[template.format(label) for label in labels], return_tensors="pt")
        text_embeds = F.normalize(model.get_text_features(**text).pooler_output, dim=-1)
    return dict(zip(labels, (100 * text_embeds @ video_embed).softmax(dim=-1).tolist()))


def test_registered_tasks_resolve_to_our_classes(classifier, extractor):
    assert isinstance(classifier, ZeroShotVideoClassificationPipeline)
    assert isinstance(extractor, VideoFeatureExtractionPipeline)


def test_zero_shot_output_sorted_normalised_and_correct(classifier, model, processor):
    out = classifier(str(PARK), candidate_labels=LABELS)
    assert sorted(item["label"] for item in out) == sorted(LABELS)
    scores = [item["score"] for item in out]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=1e-5)
    expected = _direct_scores(model, processor, PARK, LABELS)
    for item in out:
        assert item["score"] == pytest.approx(expected[item["label"]], abs=1e-5)

    assert [item["label"] for item in classifier(str(PARK), candidate_labels=LABELS, top_k=2)] == [
        out[0]["label"],
        out[1]["label"],
    ]


def test_zero_shot_batched_equals_single(classifier):
    park_bytes = PARK.read_bytes()
    inputs = [str(PARK), str(SPEECH), park_bytes]
    batched = classifier(inputs, candidate_labels=LABELS, batch_size=2)
    assert len(batched) == 3
    for video, result in zip(inputs, batched):
        single = classifier(video, candidate_labels=LABELS)
        assert [r["label"] for r in result] == [s["label"] for s in single]
        np.testing.assert_allclose([r["score"] for r in result], [s["score"] for s in single], atol=1e-5)
    # bytes and path decode the same clip
    np.testing.assert_allclose([r["score"] for r in batched[0]], [r["score"] for r in batched[2]], atol=1e-6)


def test_zero_shot_template_list_is_averaged(classifier, model, processor):
    templates = ["a person {}", "a video of {}"]
    out = classifier(str(SPEECH), candidate_labels=LABELS[:3], hypothesis_template=templates)
    video_embed = F.normalize(_direct_video_embedding(model, processor, str(SPEECH)), dim=-1)
    with torch.no_grad():
        class_embeds = []
        for label in LABELS[:3]:
            text = processor(text=[t.format(label) for t in templates], return_tensors="pt")
            per_template = F.normalize(model.get_text_features(**text).pooler_output, dim=-1)
            class_embeds.append(F.normalize(per_template.mean(dim=0), dim=-1))
    expected = (100 * torch.stack(class_embeds) @ video_embed).softmax(dim=-1)
    got = {item["label"]: item["score"] for item in out}
    np.testing.assert_allclose([got[label] for label in LABELS[:3]], expected.numpy(), atol=1e-5)


def test_feature_extraction_inputs_agree_and_are_normalised(extractor, model, processor, tmp_path):
    expected = F.normalize(_direct_video_embedding(model, processor, str(PARK)), dim=-1)
    from_path = extractor(str(PARK))
    assert isinstance(from_path, list) and len(from_path) == model.config.projection_dim
    np.testing.assert_allclose(from_path, expected.numpy(), atol=1e-5)
    assert np.linalg.norm(from_path) == pytest.approx(1.0, abs=1e-5)
    as_bytes = PARK.read_bytes()
    for other in (PARK, as_bytes, {"bytes": as_bytes, "path": None}, {"bytes": None, "path": str(PARK)}):
        np.testing.assert_allclose(extractor(other), from_path, atol=1e-6)
    raw = extractor(str(PARK), normalize=False, return_tensors=True)
    torch.testing.assert_close(raw, _direct_video_embedding(model, processor, str(PARK)), atol=1e-5, rtol=1e-4)

    batched = extractor([str(PARK), str(SPEECH), str(PARK)], batch_size=2)
    np.testing.assert_allclose(batched[0], from_path, atol=1e-5)
    np.testing.assert_allclose(batched[2], from_path, atol=1e-5)
    np.testing.assert_allclose(batched[1], extractor(str(SPEECH)), atol=1e-5)


def test_decoded_array_input(extractor):
    with av.open(str(PARK)) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    assert frames.shape[0] == 17 and frames.dtype == np.uint8  # the header says 18; 17 decode
    np.testing.assert_allclose(extractor(frames), extractor(str(PARK)), atol=1e-4)


def test_video_processor_options_are_forwarded(extractor, model, processor):
    default = np.array(extractor(str(SPEECH)))
    two_frames = np.array(extractor(str(SPEECH), num_frames=2))
    expected = F.normalize(_direct_video_embedding(model, processor, str(SPEECH), num_frames=2), dim=-1)
    np.testing.assert_allclose(two_frames, expected.numpy(), atol=1e-5)
    assert not np.allclose(two_frames, default, atol=1e-3)
    # the same option through video_kwargs
    np.testing.assert_allclose(extractor(str(SPEECH), video_kwargs={"num_frames": 2}), two_frames, atol=1e-6)


def test_dtype_and_device_arguments(model_dir):
    register_pipelines()
    classifier = pipeline(
        "zero-shot-video-classification", model=str(model_dir), device="cpu", dtype=torch.bfloat16
    )
    assert classifier.model.dtype == torch.bfloat16 and classifier.device.type == "cpu"
    out = classifier(str(PARK), candidate_labels=LABELS)
    scores = [item["score"] for item in out]
    assert all(np.isfinite(scores)) and sum(scores) == pytest.approx(1.0, abs=1e-3)


def test_pipeline_from_objects_and_errors(model, processor):
    classifier = ZeroShotVideoClassificationPipeline(model=model, processor=processor, device="cpu")
    assert len(classifier(str(PARK), candidate_labels=["a", "b"])) == 2
    with pytest.raises(ValueError, match="candidate_labels"):
        classifier(str(PARK))
    with pytest.raises(ValueError, match="placeholder"):
        classifier(str(PARK), candidate_labels=["a"], hypothesis_template="no placeholder")
    with pytest.raises(TypeError, match="Unexpected"):
        classifier(str(PARK), candidate_labels=["a"], not_an_option=1)
