"""Video-tower forward speed: eager vs SDPA attention, full vs tube-masked input (CPU or CUDA).

    python benchmarks/bench_model.py [--preset b16] [--frames 8] [--batch 1] [--repeats 3] [--device cpu]

Random weights (no download): speed does not depend on the values. Prints one line per setting and a JSON summary.
"""

import argparse
import json
import time

import torch

from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model


def bench(model, pixels, keep, repeats: int) -> float:
    with torch.inference_mode():
        model.get_video_features(pixel_values_videos=pixels, keep_indices=keep)  # warm-up
        if pixels.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            model.get_video_features(pixel_values_videos=pixels, keep_indices=keep)
        if pixels.is_cuda:
            torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="b16")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    config = TVTSv2Config.from_preset(args.preset)
    model = TVTSv2Model(config).to(args.device, dtype).eval()
    vision = config.vision_config
    pixels = torch.randn(args.batch, args.frames, 3, vision.image_size, vision.image_size, device=args.device,
                         dtype=dtype)
    patches = vision.num_patches
    masked = torch.stack([torch.randperm(patches)[: patches // 2] for _ in range(args.batch)]).to(args.device)
    results = []
    for implementation in ("eager", "sdpa"):
        model.set_attn_implementation(implementation)
        for name, keep in (("full", None), ("mask0.5", masked)):
            seconds = bench(model, pixels, keep, args.repeats)
            clips = args.batch / seconds
            results.append({"attn": implementation, "input": name, "s_per_batch": round(seconds, 4),
                            "clips_per_s": round(clips, 3)})
            print(f"{args.preset} {args.device} {args.dtype} T={args.frames} B={args.batch} {implementation:5s} "
                  f"{name:8s} {seconds * 1000:9.1f} ms/batch {clips:8.2f} clips/s")
    print(json.dumps({"preset": args.preset, "frames": args.frames, "batch": args.batch, "device": args.device,
                      "torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}))


if __name__ == "__main__":
    main()
