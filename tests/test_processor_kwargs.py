"""`TVTSv2Processor`'s kwargs the transformers way (issue 20, items 1 and 8).

The checks of transformers' `ProcessorTesterMixin` about kwargs merging, defaults and tokenizer init kwargs
(`tests/test_processing_common.py` of the transformers source distribution), written again for this processor:
defaults are declared where `ProcessorMixin._merge_kwargs` looks for them, and the documented order holds (call
kwargs > tokenizer init kwargs > processor defaults). Plus: `TVTSv2Tokenizer()` is the shipped CLIP vocabulary.
"""

import inspect

import numpy as np
import pytest
import torch

from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor, TVTSv2ProcessorKwargs
from modeling_tvtsv2.tokenization_tvtsv2 import TVTSv2Tokenizer, build_clip_tokenizer
from modeling_tvtsv2.video_processing_tvtsv2 import TVTSv2VideoProcessor


CAT = [49406, 320, 1125, 539, 320, 2368, 49407]  # "a photo of a cat" in OpenAI CLIP's tokenizer
TEXT = "lower newer"


@pytest.fixture(scope="module")
def video_processor() -> TVTSv2VideoProcessor:
    return TVTSv2VideoProcessor(image_size=32, num_frames=2)


@pytest.fixture(scope="module")
def processor(video_processor) -> TVTSv2Processor:
    return TVTSv2Processor(video_processor=video_processor, tokenizer=build_clip_tokenizer())


def _video(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)


# ---- defaults: declared where transformers merges them -------------------------------------------------------


def test_merged_defaults_are_what_a_call_uses(processor):
    # ProcessorTesterMixin.test_subprocessor_defaults (text): processor(text) == tokenizer(text, **merged)
    merged = processor._merge_kwargs(TVTSv2ProcessorKwargs, tokenizer_init_kwargs=processor.tokenizer.init_kwargs)
    text_kwargs = merged["text_kwargs"]
    assert text_kwargs == {"padding": "max_length", "max_length": 77, "truncation": True, "return_tensors": "pt"}
    direct = processor.tokenizer([TEXT], **text_kwargs)
    through = processor(text=TEXT)
    for key in ("input_ids", "attention_mask"):
        assert torch.equal(direct[key], through[key]), key
    assert through["input_ids"].shape == (1, 77)


def test_merged_video_defaults_are_what_a_call_uses(processor, video_processor):
    # ProcessorTesterMixin.test_subprocessor_defaults (videos)
    merged = processor._merge_kwargs(TVTSv2ProcessorKwargs, tokenizer_init_kwargs=processor.tokenizer.init_kwargs)
    direct = video_processor([_video()], **merged["videos_kwargs"])["pixel_values_videos"]
    through = processor(videos=[_video()])["pixel_values_videos"]
    assert direct.shape == (1, 2, 3, 32, 32)
    torch.testing.assert_close(direct, through)


def test_no_redundant_default_kwargs(processor):
    # ProcessorTesterMixin.test_no_redundant_default_kwargs: a default equal to the sub-processor's own is noise
    call_defaults = inspect.signature(processor.tokenizer.__call__).parameters
    for name, value in processor.text_kwargs.items():
        assert call_defaults[name].default != value, name
    for name, value in processor.videos_kwargs.items():
        assert getattr(processor.video_processor, name, None) != value, name
    assert processor.valid_processor_kwargs is TVTSv2ProcessorKwargs


def test_tokenizer_context_length_is_the_default(video_processor):
    processor = TVTSv2Processor(video_processor=video_processor, tokenizer=build_clip_tokenizer(model_max_length=16))
    assert processor._merge_kwargs(tokenizer_init_kwargs=processor.tokenizer.init_kwargs)["text_kwargs"][
        "max_length"
    ] == 16
    assert processor(text=TEXT)["input_ids"].shape == (1, 16)


# ---- tokenizer init kwargs win over the defaults, call kwargs over both -------------------------------------


def test_tokenizer_init_kwargs_win_over_the_processor_defaults(video_processor):
    # ProcessorTesterMixin.test_subprocessor_defaults_preserved_by_kwargs (videos)
    tokenizer = TVTSv2Tokenizer(max_length=167, padding="max_length")
    processor = TVTSv2Processor(video_processor=video_processor, tokenizer=tokenizer)
    inputs = processor(text=TEXT, videos=[_video()])
    assert inputs["input_ids"].shape == (1, 167)
    assert inputs["pixel_values_videos"].shape == (1, 2, 3, 32, 32)
    # a call's kwargs still win over the tokenizer's
    assert processor(text=TEXT, max_length=20)["input_ids"].shape == (1, 20)


def test_call_kwargs_override_a_tokenizer_without_padding(video_processor):
    # ProcessorTesterMixin.test_kwargs_overrides_default_subprocessor_kwargs (videos)
    tokenizer = TVTSv2Tokenizer(padding=False)
    processor = TVTSv2Processor(video_processor=video_processor, tokenizer=tokenizer)
    assert processor(text=TEXT)["input_ids"].shape == (1, 4)  # init kwarg padding=False beats the default
    inputs = processor(text=TEXT, videos=[_video()], max_length=112, padding="max_length", num_frames=3)
    assert inputs["input_ids"].shape == (1, 112)
    assert inputs["pixel_values_videos"].shape == (1, 3, 3, 32, 32)


# ---- the forms of call kwargs -------------------------------------------------------------------------------


def test_unstructured_kwargs(processor):
    # ProcessorTesterMixin.test_unstructured_kwargs / _batched
    inputs = processor(text=TEXT, videos=[_video()], max_length=76, padding="max_length", return_tensors="pt")
    assert inputs["input_ids"].shape == (1, 76)
    batched = processor(text=["lower newer", "upper older longer"], videos=[_video(0), _video(1)], padding="longest")
    assert batched["input_ids"].shape[0] == 2 and batched["input_ids"].shape[1] < 76
    assert batched["attention_mask"][0].sum() < batched["attention_mask"][1].sum()  # the shorter one was padded


def test_structured_kwargs_nested_from_dict(processor):
    # ProcessorTesterMixin.test_structured_kwargs_nested_from_dict
    inputs = processor(
        text=TEXT,
        videos=[_video()],
        common_kwargs={"return_tensors": "pt"},
        videos_kwargs={"num_frames": 3},
        text_kwargs={"padding": "max_length", "max_length": 76},
    )
    assert inputs["input_ids"].shape == (1, 76)
    assert inputs["pixel_values_videos"].shape == (1, 3, 3, 32, 32)


def test_flat_kwarg_applies_when_the_modality_dict_lacks_it(processor):
    # ProcessorTesterMixin.test_flat_kwarg_applied_when_modality_dict_lacks_it
    inputs = processor(text=TEXT, videos=[_video()], text_kwargs={}, return_tensors="np")
    assert isinstance(inputs["input_ids"], np.ndarray) and isinstance(inputs["pixel_values_videos"], np.ndarray)


def test_doubly_passed_and_overlapping_kwargs_are_refused(processor):
    # ProcessorTesterMixin.test_doubly_passed_kwargs / test_overlapping_text_image_kwargs_handling
    with pytest.raises(ValueError):
        processor(text=[TEXT], videos=[_video()], videos_kwargs={"num_frames": 3}, num_frames=3)
    with pytest.raises(ValueError):
        processor(text=TEXT, videos=[_video()], text_kwargs={"padding": "do_not_pad"}, padding="max_length")


# ---- item 8: the tokenizer without arguments -----------------------------------------------------------------


def test_tokenizer_without_arguments_is_the_clip_vocabulary(tmp_path):
    tokenizer = TVTSv2Tokenizer()
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77
    assert tokenizer("a photo of a cat")["input_ids"] == CAT
    assert tokenizer.get_vocab() == build_clip_tokenizer().get_vocab()
    tokenizer.save_pretrained(tmp_path)
    assert TVTSv2Tokenizer.from_pretrained(tmp_path)("A photo of a CAT")["input_ids"] == CAT
