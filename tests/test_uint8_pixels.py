"""uint8 pixel batches (issue 12): the collator's `pixel_dtype="uint8"` ships the crop as bytes and the trainer
normalises it on its device. Checked on real files against the float32 path: the same pixels bit for bit after
`normalize_video_pixels`, the same trained weights, the empty-batch path, and the `--pixel_dtype` flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset

from modeling_tvtsv2 import TVTSv2Config, TVTSv2ForPreTraining, normalize_video_pixels
from modeling_tvtsv2.data.collator import TVTSv2PretrainingCollator
from modeling_tvtsv2.pretraining.run import build_collators, main
from modeling_tvtsv2.pretraining.arguments import parse_arguments
from modeling_tvtsv2.tokenization_tvtsv2 import build_clip_tokenizer
from modeling_tvtsv2.pretraining.trainer import TVTSv2Trainer, TVTSv2TrainingArguments
from modeling_tvtsv2.video_reading_tvtsv2 import read_video_pixels

DATA = Path(__file__).parent / "data"
OBAMA = str(DATA / "obama_speech.mp4")  # 320x240, 8.8 s
FRAMES = 4


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer()


def transcript_row(video_id: str = "obama", video: str = OBAMA) -> dict:
    # a word every 0.3 s: every window the span rule draws on the 8.8 s clip holds words
    words = [{"word": f"w{i}", "time": float(t)} for i, t in enumerate(np.arange(0.1, 8.6, 0.3))]
    return {"video": video, "video_id": video_id, "duration": 8.8, "words": words}


def collator(tokenizer, pixel_dtype: str, training: bool = True, **kwargs) -> TVTSv2PretrainingCollator:
    settings = dict(num_frames=FRAMES, image_size=64, patch_size=16, mask_ratio=0.5, training=training, seed=3)
    settings.update(kwargs)
    return TVTSv2PretrainingCollator(tokenizer, pixel_dtype=pixel_dtype, **settings)


# --------------------------------------------------------------------------------------------------------------
# (a) the collator's uint8 batch is the float32 batch before normalisation, bit for bit
# --------------------------------------------------------------------------------------------------------------


def test_uint8_batch_normalises_to_the_float32_batch_bit_for_bit(tokenizer):
    group = {
        "__tvtsv2_group__": True, "kind": "transcript", "rows": [transcript_row("a"), transcript_row("b")],
        "keys": [(0, 0, 1, 0), (0, 0, 2, 0)], "reserve_rows": [], "reserve_keys": [],
    }  # fmt: skip
    settings = dict(num_frames=12, image_size=224, patch_size=16)  # the real sample shape
    as_float = collator(tokenizer, "float32", **settings)([group])
    as_uint8 = collator(tokenizer, "uint8", **settings)([group])
    pixels = as_uint8["pixel_values_videos"]
    assert pixels.dtype == torch.uint8 and pixels.shape == (2, 12, 3, 224, 224) and pixels.is_contiguous()
    assert as_float["pixel_values_videos"].dtype == torch.float32
    assert int(pixels.max()) > int(pixels.min())  # real picture content, not a constant
    assert torch.equal(normalize_video_pixels(pixels), as_float["pixel_values_videos"])
    assert as_uint8.keys() == as_float.keys()
    for key in as_float:
        if key != "pixel_values_videos":
            value = as_float[key]
            assert torch.equal(as_uint8[key], value) if isinstance(value, torch.Tensor) else as_uint8[key] == value


def test_read_video_pixels_uint8_is_the_float_crop_before_normalisation():
    draws = dict(num_frames=5, sampling="random", transform="train", image_size=96)
    as_float, _ = read_video_pixels(OBAMA, generator=torch.Generator().manual_seed(7), **draws)
    as_uint8, _ = read_video_pixels(OBAMA, generator=torch.Generator().manual_seed(7), pixel_dtype="uint8", **draws)
    assert as_uint8.dtype == torch.uint8 and as_uint8.shape == (5, 3, 96, 96)
    assert torch.equal(normalize_video_pixels(as_uint8), as_float)
    # also with a non-default normalisation, and without any
    mean, std = (0.5, 0.25, 0.1), (0.2, 0.3, 0.4)
    custom, _ = read_video_pixels(OBAMA, generator=torch.Generator().manual_seed(7), image_mean=mean, image_std=std,
                                  **draws)  # fmt: skip
    assert torch.equal(normalize_video_pixels(as_uint8, image_mean=mean, image_std=std), custom)
    raw, _ = read_video_pixels(OBAMA, generator=torch.Generator().manual_seed(7), rescale_factor=None, image_mean=None,
                               image_std=None, **draws)  # fmt: skip
    assert torch.equal(normalize_video_pixels(as_uint8, None, None, None), raw)


def test_max_output_bytes_counts_the_returned_dtype():
    # 4 frames x 3 x 64 x 64 = 49152 values: 49152 bytes as uint8, 196608 as float32
    draws = dict(num_frames=4, sampling="uniform", transform="eval", image_size=64, max_output_bytes=100_000)
    pixels, _ = read_video_pixels(OBAMA, pixel_dtype="uint8", **draws)
    assert pixels.dtype == torch.uint8 and pixels.numel() == 49152
    with pytest.raises(ValueError, match="max_output_bytes=100000"):
        read_video_pixels(OBAMA, **draws)


def test_bad_pixel_dtype_and_bad_normalize_input_are_clear_errors(tokenizer):
    with pytest.raises(ValueError, match="pixel_dtype must be 'float32' or 'uint8', got 'int8'"):
        collator(tokenizer, "int8")
    with pytest.raises(ValueError, match="pixel_dtype must be one of"):
        read_video_pixels(OBAMA, num_frames=2, pixel_dtype="float16")
    with pytest.raises(ValueError, match="expects a uint8 tensor.*float32"):
        normalize_video_pixels(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"channels first.*\(1, 4, 4, 3\)"):
        normalize_video_pixels(torch.zeros(1, 4, 4, 3, dtype=torch.uint8))


def test_the_model_refuses_uint8_pixels_with_one_clear_error():
    model = TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny", vision_config={"num_frames": FRAMES})).eval()
    ids = torch.tensor([[[49406, 320, 49407]]])
    with pytest.raises(ValueError, match="pixel_values_videos must be float normalised pixels.*torch.uint8"):
        model(pixel_values_videos=torch.zeros(1, FRAMES, 3, 64, 64, dtype=torch.uint8), input_ids=ids)


# --------------------------------------------------------------------------------------------------------------
# (b, c) TVTSv2Trainer: uint8 and float32 collators train to the same weights, empty batches included
# --------------------------------------------------------------------------------------------------------------


def rows(readable: list[bool], tmp_path: Path) -> Dataset:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    return Dataset.from_list([transcript_row(f"v{i}", OBAMA if ok else str(broken)) for i, ok in enumerate(readable)])


def train(tmp_path: Path, tokenizer, pixel_dtype: str, readable: list[bool], **overrides) -> TVTSv2Trainer:
    torch.manual_seed(0)
    model = TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny", vision_config={"num_frames": FRAMES}))
    settings = dict(
        output_dir=str(tmp_path / pixel_dtype), report_to="none", use_cpu=True, seed=0, remove_unused_columns=False,
        disable_tqdm=True, save_strategy="no", freeze_schedule="none", per_device_train_batch_size=2,
        per_device_eval_batch_size=2, train_sampling_strategy="sequential", max_steps=2, logging_steps=1,
        dataloader_num_workers=0, learning_rate=1e-2, clip_learning_rate=1e-2,
    )  # fmt: skip
    settings.update(overrides)
    trainer = TVTSv2Trainer(
        model=model, args=TVTSv2TrainingArguments(**settings), train_dataset=rows(readable, tmp_path),
        data_collator=collator(tokenizer, pixel_dtype), eval_data_collator=collator(tokenizer, pixel_dtype, False),
    )  # fmt: skip
    trainer.train()
    return trainer


def assert_same_training(a: TVTSv2Trainer, b: TVTSv2Trainer) -> None:
    torch.manual_seed(0)  # the initial weights of both runs
    initial = TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny", vision_config={"num_frames": FRAMES}))
    weights_a, weights_b = a.model.state_dict(), b.model.state_dict()
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name
    moved = initial.state_dict()["vision_model.embeddings.patch_embedding.weight"]
    patch_weights = weights_a["vision_model.embeddings.patch_embedding.weight"]
    assert not torch.equal(patch_weights, moved)  # the pixels were learned from
    def losses(trainer):
        return [(e["loss"], e.get("contrastive_loss")) for e in trainer.state.log_history if "loss" in e]

    assert losses(a) == losses(b) and len(losses(a)) == 2 and losses(a)[0][1] is not None


def test_uint8_and_float32_batches_train_to_the_same_weights(tmp_path, tokenizer):
    as_float = train(tmp_path, tokenizer, "float32", [True] * 4)
    # the uint8 run goes through a real DataLoader worker: bytes cross the process boundary
    as_uint8 = train(tmp_path, tokenizer, "uint8", [True] * 4, dataloader_num_workers=1)
    assert_same_training(as_uint8, as_float)


def test_empty_uint8_batches_train_and_evaluate(tmp_path, tokenizer):
    # the second batch's videos do not decode: an empty uint8 batch, run as the zero placeholder sample
    as_float = train(tmp_path, tokenizer, "float32", [True, True, False, False])
    as_uint8 = train(tmp_path, tokenizer, "uint8", [True, True, False, False])
    assert [e["skipped_samples"] for e in as_uint8.state.log_history if "loss" in e] == [0, 2]
    assert_same_training(as_uint8, as_float)
    metrics = as_uint8.evaluate(rows([False, False, True, True], tmp_path))
    assert metrics["eval_empty_batches"] == 1 and metrics["eval_num_videos"] == 2
    assert metrics["eval_loss"] == as_float.evaluate(rows([False, False, True, True], tmp_path))["eval_loss"]


def test_collators_with_different_normalisations_are_refused(tmp_path, tokenizer):
    eval_collator = collator(tokenizer, "uint8", False)
    eval_collator.image_mean = (0.5, 0.5, 0.5)
    args = TVTSv2TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", freeze_schedule="none")
    with pytest.raises(ValueError, match="normalise pixels differently"):
        TVTSv2Trainer(
            model=TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny")), args=args,
            data_collator=collator(tokenizer, "uint8"), eval_data_collator=eval_collator,
        )  # fmt: skip


# --------------------------------------------------------------------------------------------------------------
# (d) the --pixel_dtype flag reaches both collators, in either spelling; uint8 is the default
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, expected",
    [([], "uint8"), (["--pixel_dtype", "float32"], "float32"), (["--pixel-dtype=float32"], "float32"),
     (["--pixel-dtype", "uint8"], "uint8")],
)  # fmt: skip
def test_pixel_dtype_flag_reaches_the_collators(tokenizer, flags, expected):
    arguments = parse_arguments(flags)
    vision = TVTSv2Config.from_preset("tiny").vision_config
    train_collator, eval_collator = build_collators(arguments.data, tokenizer, vision, 0.5, seed=0)
    assert train_collator.pixel_dtype == eval_collator.pixel_dtype == expected


def test_dry_run_shows_the_pixel_dtype_and_a_bad_value_is_one_line(capsys):
    assert main(["--pixel-dtype", "float32", "--dry_run"]) == 0
    assert json.loads(capsys.readouterr().out)["corpora"]["pixel_dtype"] == "float32"
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(["--pixel_dtype", "float16"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'float16'" in capsys.readouterr().err
