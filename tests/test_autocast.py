"""The original's mixed-precision inference mode (issue 9, item 11): `autocast_context`, pipelines, `run_eval`.

Documented tolerance (tiny model, two real clips and two captions, CPU): unit embeddings under bf16 autocast are
within 5e-3 (max abs) of float32 and have cosine >= 0.9999 with them; fp16 autocast within 1e-3, cosine >= 0.99999.
"""

import json
from pathlib import Path

import datasets
import pytest
import torch
import torch.nn.functional as F
from transformers import pipeline

from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
from modeling_tvtsv2.evaluation.zero_shot import main
from modeling_tvtsv2.modeling_tvtsv2 import autocast_context
from modeling_tvtsv2.pipeline_tvtsv2 import register_pipelines
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor


DATA = Path(__file__).parent / "data"
PARK, SPEECH = str(DATA / "park.mp4"), str(DATA / "obama_speech.mp4")
TOLERANCE = {"bf16": (5e-3, 0.9999), "fp16": (1e-3, 0.99999)}


@pytest.fixture(scope="module")
def model(model_dir):
    return TVTSv2Model.from_pretrained(model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def inputs(model_dir):
    processor = TVTSv2Processor.from_pretrained(model_dir)
    return processor(text=["a person dancing", "cooking pasta in a pan"], videos=[PARK, SPEECH])


def _embeddings(model, inputs):
    with torch.no_grad():
        video = model.get_video_features(pixel_values_videos=inputs["pixel_values_videos"]).pooler_output
        text = model.get_text_features(input_ids=inputs["input_ids"]).pooler_output
    return F.normalize(video.float(), dim=-1), F.normalize(text.float(), dim=-1)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_matches_float32_within_tolerance(model, inputs, precision):
    reference = _embeddings(model, inputs)
    with autocast_context(model, precision):
        mixed = _embeddings(model, inputs)
    atol, min_cosine = TOLERANCE[precision]
    for ref, got in zip(reference, mixed):
        assert not torch.equal(ref, got)  # autocast really ran
        assert (ref - got).abs().max() < atol
        assert (ref * got).sum(-1).min() >= min_cosine
    # leaving the block restores float32 exactly
    for ref, again in zip(reference, _embeddings(model, inputs)):
        assert torch.equal(ref, again)


def test_low_precision_matmuls_with_float32_residual_stream_and_layer_norm(model, inputs):
    dtypes: dict[str, set] = {"linear": set(), "layer_norm": set(), "layer": set()}
    hooks = []
    for module in model.modules():
        kind = (
            "linear" if isinstance(module, torch.nn.Linear)
            else "layer_norm" if isinstance(module, torch.nn.LayerNorm)
            else "layer" if type(module).__name__.endswith("EncoderLayer") or type(module).__name__.endswith("Layer")
            else None
        )  # fmt: skip
        if kind is not None:
            hooks.append(module.register_forward_hook(lambda m, a, out, k=kind: dtypes[k].add(
                (out[0] if isinstance(out, tuple) else out).dtype)))  # fmt: skip
    try:
        with autocast_context(model, "fp16"):
            _embeddings(model, inputs)
    finally:
        for hook in hooks:
            hook.remove()
    assert dtypes["linear"] == {torch.float16}
    assert dtypes["layer_norm"] == {torch.float32}
    assert dtypes["layer"] == {torch.float32}  # the residual stream between blocks
    assert not any("forward" in m.__dict__ for m in model.modules())  # LayerNorms restored


def test_autocast_refuses_a_half_model_and_bad_names(model):
    with pytest.raises(ValueError, match="autocast precision must be 'fp16' or 'bf16'"):
        with autocast_context(model, "int8"):
            pass
    half = TVTSv2Model(TVTSv2Config.from_preset("tiny")).to(torch.bfloat16)
    with pytest.raises(ValueError, match="autocast needs a float32 model"):
        with autocast_context(half, "bf16"):
            pass


def test_pipelines_take_autocast(model_dir):
    register_pipelines()
    labels = ["walking a dog", "giving a speech", "cooking"]
    classifier = pipeline("zero-shot-video-classification", model=str(model_dir), device="cpu")
    exact = {item["label"]: item["score"] for item in classifier(PARK, candidate_labels=labels)}
    mixed = {item["label"]: item["score"] for item in classifier(PARK, candidate_labels=labels, autocast="bf16")}
    assert mixed != exact
    assert all(abs(mixed[label] - exact[label]) < 0.05 for label in labels)
    extractor = pipeline("video-feature-extraction", model=str(model_dir), device="cpu", autocast="fp16")
    reference = pipeline("video-feature-extraction", model=str(model_dir), device="cpu")
    a, b = extractor(PARK, return_tensors=True), reference(PARK, return_tensors=True)
    assert not torch.equal(a, b) and (a - b).abs().max() < TOLERANCE["fp16"][0]
    with pytest.raises(ValueError, match="autocast must be 'fp16' or 'bf16'"):
        reference(PARK, autocast="fp8")


def test_run_eval_autocast(model_dir, tmp_path):
    datasets.Dataset.from_dict({"video": [PARK, SPEECH], "caption": ["a park", "a speech"]}).save_to_disk(
        tmp_path / "ret"
    )
    output = tmp_path / "results.json"
    common = ["--task", "retrieval", "--model", str(model_dir), "--dataset", str(tmp_path / "ret"), "--no-progress"]
    main([*common, "--output", str(output), "--autocast", "bf16"])
    assert json.loads(output.read_text())["settings"]["autocast"] == "bf16"
    with pytest.raises(SystemExit):
        main([*common, "--output", str(tmp_path / "x.json"), "--autocast", "fp16", "--dtype", "float16"])
    assert not (tmp_path / "x.json").exists()
