"""Eval-transform centre-crop offsets on frame sizes with half-pixel offsets (issue 13 item 3).

The original's torchvision `CenterCrop` places the crop at `int(round((size - crop) / 2))` with Python's round (halves
to even). Sizes whose resized side leaves an odd margin produce a half-pixel offset; among them, those where the
half lies above an odd integer (`51.5` -> 52) tell round from floor, those above an even integer (`66.5` -> 66) tell
round-half-to-even from round-half-up. The reference below is Pillow (NEAREST resize + crop), written out here.
"""

import numpy as np
import pytest
import torch

from modeling_tvtsv2.video_transforms_tvtsv2 import preprocess_frames


SIZE = 224
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # the original's Normalize
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# (height, width): margin / 2 of the resized longer side (resized shorter side = int(1.2 * 224) = 268)
HALF_PIXEL_SIZES = [
    (288, 352),  # CIF: width 327, left 51.5 -> 52 (floor gives 51)
    (352, 288),  # portrait CIF: top 51.5 -> 52
    (1024, 1280),  # SXGA: width 335, left 55.5 -> 56
    (1080, 2560),  # ultrawide: width 635, left 205.5 -> 206
    (576, 720),  # PAL DV: width 335, left 55.5 -> 56
    (360, 480),  # width 357, left 66.5 -> 66 (round half to even; half-up gives 67)
    (1024, 768),  # portrait XGA: top 66.5 -> 66
]


def pillow_eval_reference(frame: np.ndarray, size: int = SIZE) -> torch.Tensor:
    image_module = pytest.importorskip("PIL.Image")
    height, width = frame.shape[:2]
    short = int(size * 1.2)
    new_w, new_h = (short, int(short * height / width)) if width <= height else (int(short * width / height), short)
    image = image_module.fromarray(frame).resize((new_w, new_h), image_module.NEAREST)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    pixels = np.asarray(image.crop((left, top, left + size, top + size)))
    return torch.from_numpy((pixels.astype(np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD).permute(2, 0, 1)


@pytest.mark.parametrize("height, width", HALF_PIXEL_SIZES)
def test_eval_crop_offsets_follow_torchvision_rounding(height, width):
    pytest.importorskip("PIL")
    rng = np.random.default_rng(height * 31 + width)
    frames = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    output = preprocess_frames(torch.from_numpy(frames), mode="eval")
    assert output.shape == (1, 3, SIZE, SIZE)
    assert torch.equal(output[0], pillow_eval_reference(frames[0]))
