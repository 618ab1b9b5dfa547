"""Zero-shot evaluation runners end to end on tiny data (videos generated with PyAV, 🤗 Datasets on disk).

Two kinds of checks:
* a transparent "colour model" (video embedding = mean normalised RGB, text embedding = one-hot of the colour words
  it mentions) on solid-colour videos, so that every expected metric is worked out by hand in the comments;
* the tiny TVTSv2 model, where the runner's embeddings and metrics must equal an independent computation
  (processor + model called directly, ranks by brute force), and the CLI writes the JSON record.
"""

import json
import os
from types import SimpleNamespace

import av
import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
from modeling_tvtsv2.evaluation.zero_shot import (
    build_class_embeddings,
    compute_video_embeddings,
    evaluate_multiple_choice,
    evaluate_retrieval,
    evaluate_zero_shot_classification,
    load_eval_dataset,
    main,
    run_evaluation,
)
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor


COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def make_video(path, colour, num_frames=16, size=(48, 64), fps=8, seed=0):
    """A short MPEG-4 clip of a (slightly noisy) solid colour."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for _ in range(num_frames):
            frame = np.empty((*size, 3), np.int64)
            frame[:] = colour
            frame = np.clip(frame + rng.integers(-8, 9, frame.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return {name: make_video(folder / f"{name}.mp4", rgb, seed=i) for i, (name, rgb) in enumerate(COLOURS.items())}


@pytest.fixture(scope="module")
def processor():
    return TVTSv2Processor.from_defaults(image_size=64, num_frames=4)


class ColourModel(torch.nn.Module):
    """Video -> mean of the normalised pixels per channel; text -> which colour words it contains (one-hot sum)."""

    def __init__(self, tokenizer):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the runners a device and a dtype
        self.channel_of_token = {tokenizer(name)["input_ids"][1]: i for i, name in enumerate(COLOURS)}

    def get_video_features(self, pixel_values_videos):
        return SimpleNamespace(pooler_output=pixel_values_videos.float().mean(dim=(1, 3, 4)))

    def get_text_features(self, input_ids, attention_mask=None):
        out = torch.zeros(input_ids.shape[0], 3)
        for token, channel in self.channel_of_token.items():
            out[:, channel] += (input_ids == token).any(dim=1).float()
        return SimpleNamespace(pooler_output=out)


@pytest.fixture(scope="module")
def colour_model(processor):
    return ColourModel(processor.tokenizer)


def test_colour_model_sanity(colour_model, processor, videos):
    # After ImageNet normalisation a red clip is (+2.2, -2.0, -1.8): positive only in its own channel.
    embeds = compute_video_embeddings(colour_model, processor, list(videos.values()), batch_size=2, show_progress=False)
    assert (embeds.argmax(dim=1) == torch.arange(3)).all()
    assert ((embeds > 0).sum(dim=1) == 1).all()


def test_retrieval_multi_caption_hand_computed(colour_model, processor, videos, tmp_path):
    dataset = datasets.Dataset.from_dict(
        {
            "video": [videos["red"], videos["green"], videos["blue"]],
            # the red clip has a second, wrong caption
            "caption": [["a red clip", "something blue and green"], ["green"], ["blue things"]],
        }
    ).cast_column("video", datasets.Video(decode=False))
    dataset.save_to_disk(tmp_path / "ds")
    dataset = load_eval_dataset(str(tmp_path / "ds"))
    result = evaluate_retrieval(colour_model, processor, dataset, video_batch_size=2, show_progress=False)
    assert result["num_videos"] == 3 and result["num_texts"] == 4
    t2v, v2t = result["metrics"]["t2v"], result["metrics"]["v2t"]
    # t2v: "something blue and green" = (0, 1, 1) is negative only against the red clip -> rank 2; others rank 0
    assert t2v["R1"] == 75.0 and t2v["R5"] == 100.0
    assert t2v["MedR"] == 1.0 and t2v["MeanR"] == 1.5  # ranks (0, 2, 0, 0)
    # v2t: every clip's best own caption is its colour word (cosine ~0.6 vs <= 0.12 for mixed captions)
    assert v2t["R1"] == 100.0 and v2t["num_queries"] == 3


def test_retrieval_accepts_bytes_and_relative_paths(colour_model, processor, videos):
    with open(videos["red"], "rb") as handle:
        red_bytes = handle.read()
    with open(videos["green"], "rb") as handle:
        green_bytes = handle.read()
    # a plain binary column
    by_bytes = datasets.Dataset.from_dict({"video": [red_bytes, green_bytes], "caption": ["red", "green"]})
    assert evaluate_retrieval(colour_model, processor, by_bytes, show_progress=False)["metrics"]["t2v"]["R1"] == 100
    # a Video column mixing embedded bytes and a path
    mixed = datasets.Dataset.from_dict(
        {
            "video": [{"bytes": red_bytes, "path": None}, {"bytes": None, "path": videos["green"]}],
            "caption": ["green", "red"],  # swapped: R@1 = 0
        },
        features=datasets.Features({"video": datasets.Video(), "caption": datasets.Value("string")}),
    )
    assert evaluate_retrieval(colour_model, processor, mixed, show_progress=False)["metrics"]["t2v"]["R1"] == 0
    relative = datasets.Dataset.from_dict({"clip": ["blue.mp4", "green.mp4"], "text": ["green", "blue"]})
    result = evaluate_retrieval(
        colour_model,
        processor,
        relative,
        video_column="clip",
        text_column="text",
        video_root=os.path.dirname(videos["blue"]),
        show_progress=False,
    )
    assert result["metrics"]["t2v"]["R1"] == 0.0  # captions swapped on purpose


def test_classification_templates_and_class_labels(colour_model, processor, videos):
    features = datasets.Features({"video": datasets.Value("string"), "label": datasets.ClassLabel(names=list(COLOURS))})
    # the blue clip is labelled "green" on purpose -> 2 of 3 correct
    dataset = datasets.Dataset.from_dict(
        {"video": [videos["red"], videos["green"], videos["blue"]], "label": [0, 1, 1]}, features=features
    )
    result = evaluate_zero_shot_classification(
        colour_model, processor, dataset, templates=["a {} video", "{}"], show_progress=False
    )
    assert result["metrics"]["top1"] == pytest.approx(200 / 3)
    assert "top5" not in result["metrics"]  # only 3 classes: top-5 would be trivially 100
    assert result["class_names"] == ["red", "green", "blue"]
    assert result["predictions"] == [0, 1, 2]

    # string labels + explicit class names
    dataset = datasets.Dataset.from_dict({"video": [videos["green"], videos["red"]], "label": ["green", "red"]})
    result = evaluate_zero_shot_classification(
        colour_model, processor, dataset, class_names=["blue", "green", "red"], show_progress=False
    )
    assert result["metrics"]["top1"] == 100.0 and result["templates"] == ["a person {}"]


def test_multiple_choice_own_options(colour_model, processor, videos):
    dataset = datasets.Dataset.from_dict(
        {
            "video": [videos["red"], videos["green"], videos["blue"]],
            "options": [["green", "red", "blue"], ["red", "green"], ["blue", "red", "green", "red and blue"]],
            # row 2 says "red" is right for the green clip: wrong on purpose
            "answer": [1, 0, 0],
        }
    )
    result = evaluate_multiple_choice(colour_model, processor, dataset, ks=(1, 2), show_progress=False)
    assert result["metrics"]["top1"] == pytest.approx(200 / 3)
    assert result["metrics"]["top2"] == 100.0
    assert result["predictions"] == [1, 1, 0]


def test_class_embeddings_average_normalised_templates(processor):
    torch.manual_seed(0)
    model = TVTSv2Model(TVTSv2Config.from_preset("tiny")).eval()
    templates = ["a person {}", "a video of {}"]
    weights = build_class_embeddings(model, processor, ["running", "eating"], templates, show_progress=False)
    with torch.no_grad():
        expected = []
        for name in ["running", "eating"]:
            ids = processor(text=[t.format(name) for t in templates], return_tensors="pt")
            per_template = F.normalize(model.get_text_features(**ids).pooler_output, dim=-1)
            expected.append(F.normalize(per_template.mean(dim=0), dim=-1))
    torch.testing.assert_close(weights, torch.stack(expected), atol=1e-5, rtol=1e-5)
    assert torch.allclose(weights.norm(dim=-1), torch.ones(2))


def _brute_force_t2v_ranks(sims):
    # rank = position of the GT video after sorting by decreasing similarity (no ties with random weights)
    return [int(np.where(np.argsort(-row, kind="stable") == i)[0][0]) for i, row in enumerate(sims)]


def test_tiny_model_runner_and_cli(processor, videos, tmp_path):
    torch.manual_seed(0)
    model = TVTSv2Model(TVTSv2Config.from_preset("tiny")).eval()
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    paths = [videos["red"], videos["green"], videos["blue"]]
    captions = ["a person dancing", "a red ball", "cooking pasta"]
    datasets.Dataset.from_dict({"video": paths, "caption": captions}).save_to_disk(tmp_path / "ret")

    # independent computation: processor + model directly, one video at a time
    with torch.no_grad():
        video = torch.cat(
            [model.get_video_features(**processor(videos=[p], return_tensors="pt")).pooler_output for p in paths]
        )
        text = model.get_text_features(**processor(text=captions, return_tensors="pt")).pooler_output
    sims = (F.normalize(text, dim=-1) @ F.normalize(video, dim=-1).T).numpy()
    ranks = np.array(_brute_force_t2v_ranks(sims))

    embeds = compute_video_embeddings(model, processor, paths, batch_size=2, show_progress=False)
    torch.testing.assert_close(embeds, F.normalize(video, dim=-1), atol=1e-5, rtol=1e-4)

    record = run_evaluation(
        "retrieval", model, processor, str(tmp_path / "ret"), dataset_name="tiny-ret", show_progress=False
    )
    assert record["metrics"]["t2v"]["R1"] == pytest.approx(100 * np.mean(ranks == 0))
    assert record["metrics"]["t2v"]["MeanR"] == pytest.approx(ranks.mean() + 1)
    assert record["dataset"]["name"] == "tiny-ret"

    output = tmp_path / "out" / "results.json"
    main(
        [
            "--task", "retrieval", "--model", str(model_dir), "--dataset", str(tmp_path / "ret"),
            "--output", str(output), "--dataset-display-name", "tiny-ret", "--batch-size", "2", "--no-progress",
        ]
    )  # fmt: skip
    written = json.loads(output.read_text())
    assert written["task"] == "retrieval" and written["dataset"]["name"] == "tiny-ret"
    assert written["metrics"]["t2v"]["R1"] == pytest.approx(record["metrics"]["t2v"]["R1"])
    assert written["metrics"]["v2t"]["MedR"] == pytest.approx(record["metrics"]["v2t"]["MedR"])
    assert written["settings"]["video_batch_size"] == 2
