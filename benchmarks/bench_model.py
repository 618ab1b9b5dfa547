"""Video-tower speed: videos/s, MFU and peak memory for inference and a full training step (CPU or CUDA).

Implementations, measured interleaved (round-robin, one timed call each per round) within every setting:

* `einsum`        — the original-style divided attention written out below (fused qkv, CLS split off, groups by
                    reshaping, `einsum` + softmax), on the same weights: the baseline every ratio refers to;
* `eager`, `sdpa`, `flex` — `TVTSv2VisionModel` with `attn_implementation` eager / sdpa / flex_attention;
* `sdpa+compile`, `flex+compile` — the same under `torch.compile(dynamic=False)`: one static graph per mask ratio.

A setting is (preset, mode, mask ratio); `mode` is `infer` (`get_video_features` under `inference_mode`) or `train`
(forward, a loss over the projected tokens, backward, AdamW step). Random weights: speed does not depend on values.

    # CPU check (a minute; pin it and note the load average):
    taskset -c 0 python benchmarks/bench_model.py --tiny --output /tmp/bench_model_cpu.json
    # GPU (one H200/H100, bf16 autocast, bounded to < 8 min; the JSON holds every figure):
    timeout 470 python benchmarks/bench_model.py --device cuda --output bench_model_gpu.json

FLOPs are counted analytically (`video_tower_flops`, formula in benchmarks/README.md); MFU = FLOP/s / peak, with the
peak from `--peak-tflops` (default 989 for CUDA: H100/H200 dense bf16; none on CPU).
"""

import argparse
import copy
import json
import math
import os
import platform
import time

import torch
import torch.nn.functional as F

from modeling_tvtsv2 import TVTSv2Config, TVTSv2VisionModel


ALL_IMPLEMENTATIONS = ("einsum", "eager", "sdpa", "flex", "sdpa+compile", "flex+compile")
ATTN_OF = {"eager": "eager", "sdpa": "sdpa", "flex": "flex_attention", "sdpa+compile": "sdpa",
           "flex+compile": "flex_attention", "einsum": "eager"}  # fmt: skip
# The issue's reference counts (GFLOP, forward, one B/16 12x224² video, incl. projecting every token).
ISSUE_B16_GFLOP = {0.0: 556, 0.5: 275}
WARMUP_SECONDS_PER_LAYER: dict[str, float] = {}  # slowest warm-up seen per implementation (compile-time estimate)


# ---------------------------------------------------------------------------------------------------------------
# FLOPs


def kept_patches(num_patches: int, mask_ratio: float) -> int:
    """Patches kept per frame: the data pipeline's `int(P * (1 - mask_ratio))`."""
    return int(num_patches * (1.0 - mask_ratio))


def video_tower_flops(vision, projection_dim: int, frames: int, mask_ratio: float, project_all_tokens: bool) -> int:
    """Forward FLOPs of one video (2 per multiply-add; matmuls only — LayerNorm, softmax, GELU are < 1 %).

    patch embedding of all T·N patches (masking happens after it) + per layer, with L = 1 + T·n tokens:
    time and space attention projections 2 × 4·L·D² MACs, MLP 2·L·D·F MACs, and the attention products
    (QKᵀ and AV, 2·D MACs per query-key pair): the CLS query over L keys in both halves, a patch query over
    1 + T keys (time) and 1 + n keys (space); then the projection of the CLS token (`project_all_tokens`: of all
    L tokens, what the pre-training forward computes for the sort head, and what the issue's 556/275 include).
    """
    width, ffn, layers = vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers
    all_patches = vision.num_patches
    n = kept_patches(all_patches, mask_ratio)
    tokens = 1 + frames * n
    macs = frames * all_patches * (vision.num_channels * vision.patch_size**2) * width
    per_layer = 2 * 4 * tokens * width**2 + 2 * tokens * width * ffn
    per_layer += 2 * (2 * tokens * width)  # the CLS query over all tokens, in both halves
    per_layer += 2 * width * frames * n * ((1 + frames) + (1 + n))
    macs += layers * per_layer
    macs += (tokens if project_all_tokens else 1) * width * projection_dim
    return 2 * macs


def check_issue_flop_counts() -> dict:
    config = TVTSv2Config.from_preset("b16")
    counts = {}
    for mask_ratio, expected in ISSUE_B16_GFLOP.items():
        gflop = video_tower_flops(config.vision_config, config.projection_dim, 12, mask_ratio, True) / 1e9
        if round(gflop) != expected:
            raise SystemExit(f"FLOP formula gives {gflop:.1f} GFLOP at mask {mask_ratio}, the issue says {expected}")
        counts[mask_ratio] = round(gflop, 2)
    return counts


# ---------------------------------------------------------------------------------------------------------------
# The original-style baseline: divided attention with einsum, on the weights of a TVTSv2VisionModel


def einsum_divided_attention(attention, hidden_states: torch.Tensor, frames: int) -> torch.Tensor:
    heads, head_dim = attention.num_heads, attention.head_dim
    batch, seq_len, width = hidden_states.shape
    per_frame = (seq_len - 1) // frames
    weight = torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight])
    bias = torch.cat([attention.q_proj.bias, attention.k_proj.bias, attention.v_proj.bias])
    # [B, L, 3, H, d] -> three [B·H, L, d]
    q, k, v = F.linear(hidden_states, weight, bias).view(batch, seq_len, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = (x.reshape(batch * heads, seq_len, head_dim) for x in (q, k, v))
    q = q * attention.scale

    def attend(query, key, value):
        scores = torch.einsum("bid,bjd->bij", query, key).softmax(dim=-1)
        return torch.einsum("bij,bjd->bid", scores, value)

    cls_out = attend(q[:, :1], k, v)
    if attention.mode == "space":  # groups = frames
        groups, group_len = frames, per_frame

        def grouped(x):
            return x[:, 1:].reshape(batch * heads * frames, per_frame, head_dim)
    else:  # groups = spatial positions
        groups, group_len = per_frame, frames

        def grouped(x):
            x = x[:, 1:].reshape(batch * heads, frames, per_frame, head_dim).transpose(1, 2)
            return x.reshape(batch * heads * per_frame, frames, head_dim)

    cls_k = k[:, :1].repeat_interleave(groups, dim=0)
    cls_v = v[:, :1].repeat_interleave(groups, dim=0)
    out = attend(grouped(q), torch.cat([cls_k, grouped(k)], dim=1), torch.cat([cls_v, grouped(v)], dim=1))
    out = out.reshape(batch * heads, groups, group_len, head_dim)
    if attention.mode == "time":
        out = out.transpose(1, 2)
    out = torch.cat([cls_out, out.reshape(batch * heads, frames * per_frame, head_dim)], dim=1)
    out = out.reshape(batch, heads, seq_len, head_dim).transpose(1, 2).reshape(batch, seq_len, width)
    return attention.out_proj(out)


def einsum_tower_forward(model: TVTSv2VisionModel, pixels: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """`last_hidden_state` of the tower computed with `einsum_divided_attention` (same blocks otherwise)."""
    frames = pixels.shape[1]
    hidden = model.pre_layrnorm(model.embeddings(pixels, keep))
    for layer in model.encoder.layers:
        temporal = einsum_divided_attention(layer.temporal_attn, layer.temporal_layer_norm(hidden), frames)
        hidden = hidden + einsum_divided_attention(layer.self_attn, layer.layer_norm1(hidden + temporal), frames)
        hidden = hidden + layer.mlp(layer.layer_norm2(hidden))
    return hidden


# ---------------------------------------------------------------------------------------------------------------
# Measurement


class Runner:
    """One implementation of one setting: its own model copy (own config, so attention implementations never mix),
    its own optimizer for training."""

    def __init__(self, name, base_model, projection, mode, autocast_dtype, lr=1e-7):
        self.name, self.mode, self.autocast_dtype = name, mode, autocast_dtype
        self.model = copy.deepcopy(base_model)
        self.model.set_attn_implementation(ATTN_OF[name])
        self.projection = copy.deepcopy(projection)
        self.model.train(mode == "train")
        self.forward = self.model
        if name == "einsum":
            self.forward = lambda pixel_values_videos, keep_indices: einsum_tower_forward(
                self.model, pixel_values_videos, keep_indices
            )
        elif name.endswith("+compile"):
            self.forward = torch.compile(self.model, dynamic=False)
        self.optimizer = None
        if mode == "train":
            params = list(self.model.parameters()) + list(self.projection.parameters())
            self.optimizer = torch.optim.AdamW(params, lr=lr, fused=pixels_device_is_cuda(base_model))

    def state_gib(self) -> float:
        """Weights (+ gradients and AdamW moments when training) of this runner's model and projection."""
        tensors = list(self.model.parameters()) + list(self.projection.parameters())
        if self.optimizer is not None:
            tensors += [t for state in self.optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
        return sum(t.numel() * t.element_size() for t in tensors) / 2**30

    def hidden(self, pixels, keep):
        out = self.forward(pixel_values_videos=pixels, keep_indices=keep)
        return out if torch.is_tensor(out) else out.last_hidden_state

    def step(self, pixels, keep):
        device_type = pixels.device.type
        autocast = torch.autocast(device_type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)
        if self.mode == "infer":
            with torch.inference_mode(), autocast:
                hidden = self.hidden(pixels, keep)
                return self.projection(self.model.post_layernorm(hidden[:, 0]))
        with autocast:
            hidden = self.hidden(pixels, keep)
            # Every token projected (the sort head's input) + the CLS embedding: a loss touching the whole tower.
            tokens = self.projection(self.model.post_layernorm(hidden))
            loss = tokens.float().square().mean()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss


def pixels_device_is_cuda(model) -> bool:
    return next(model.parameters()).is_cuda


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure_setting(args, preset, mode, mask_ratio, implementations, log, deadline=math.inf):
    device = torch.device(args.device)
    config = TVTSv2Config.from_preset(preset)
    vision = config.vision_config
    batch = args.batch if args.batch else (8 if args.tiny else {"b16": 32, "h14": 16}.get(preset, 16))
    torch.manual_seed(0)
    base = TVTSv2VisionModel(vision).to(device)
    with torch.no_grad():  # the fresh time attention is exactly 0 (zero q/k/v): make it count in the output check
        for layer in base.encoder.layers:
            time_attention = layer.temporal_attn
            for linear in (time_attention.q_proj, time_attention.k_proj, time_attention.v_proj):
                linear.weight.normal_(std=vision.hidden_size**-0.5)
    projection = torch.nn.Linear(vision.hidden_size, config.projection_dim, bias=False).to(device)
    pixels = torch.randn(batch, args.frames, 3, vision.image_size, vision.image_size, device=device)
    n_keep = kept_patches(vision.num_patches, mask_ratio)
    keep = None
    if mask_ratio > 0:
        keep = torch.stack([torch.randperm(vision.num_patches)[:n_keep].sort().values for _ in range(batch)])
        keep = keep.to(device)
    flops = video_tower_flops(vision, config.projection_dim, args.frames, mask_ratio, mode == "train")
    flops_per_video = flops * (3 if mode == "train" else 1)  # backward = 2 × forward

    runners, results, outputs = [], {}, {}
    for name in implementations:
        if name.startswith("flex") and mode == "train" and device.type != "cuda":
            results[name] = {"skipped": "FlexAttention has no CPU backward"}
            continue
        # Warm-ups compile: skip one that would likely end past the deadline (estimate: the slowest warm-up so
        # far, scaled by depth; compile time grows with the number of layers).
        estimate = WARMUP_SECONDS_PER_LAYER.get(name, 0.0) * vision.num_hidden_layers
        if time.perf_counter() + estimate > deadline:
            results[name] = {"skipped": f"time budget (warm-up estimated at {estimate:.0f} s)"}
            continue
        try:
            runner = Runner(name, base, projection, mode, args.autocast_dtype)
            start = time.perf_counter()
            for _ in range(max(1, args.warmup)):  # compiles here
                output = runner.step(pixels, keep)
            synchronize(device)
            if mode == "infer":  # same weights everywhere: a broken fast path must not pass as a fast one
                outputs[name] = output.float().clone()
            runners.append(runner)
            warmup = time.perf_counter() - start
            per_layer = warmup / vision.num_hidden_layers
            WARMUP_SECONDS_PER_LAYER[name] = max(WARMUP_SECONDS_PER_LAYER.get(name, 0.0), per_layer)
            results[name] = {"warmup_s": round(warmup, 2), "times": [], "peak_gib": None}
        except torch.OutOfMemoryError:
            results[name] = {"skipped": "out of memory"}
            torch.cuda.empty_cache()
        except Exception as error:  # report and go on: one backend failing must not lose the others' figures
            results[name] = {"skipped": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}

    for _ in range(args.repeats):  # interleaved: every implementation once per round
        for runner in list(runners):
            result = results[runner.name]
            if device.type == "cuda":
                # Every runner's weights and optimizer state stay resident: count this step's own memory on top of
                # what was allocated before it, and add this runner's state (`state_gib`) for a one-model figure.
                before = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            try:
                runner.step(pixels, keep)
                synchronize(device)
            except torch.OutOfMemoryError:
                runners.remove(runner)
                results[runner.name] = {"skipped": "out of memory"}
                torch.cuda.empty_cache()
                continue
            result["times"].append(time.perf_counter() - start)
            if device.type == "cuda":
                step_peak = (torch.cuda.max_memory_allocated() - before) / 2**30
                result["peak_gib"] = round(max(step_peak + runner.state_gib(), result["peak_gib"] or 0), 2)
    del runners
    if "einsum" in outputs:
        for name, output in outputs.items():
            cosine = F.cosine_similarity(output, outputs["einsum"], dim=-1).min().item()
            results[name]["min_cosine_vs_einsum"] = round(cosine, 6)

    baseline = results.get("einsum", {}).get("times")
    baseline_rate = batch / sorted(baseline)[len(baseline) // 2] if baseline else None
    for name, result in results.items():
        times = result.pop("times", None)
        if not times:
            continue
        median = sorted(times)[len(times) // 2]
        rate = batch / median
        result.update(s_per_step=round(median, 5), videos_per_s=round(rate, 3),
                      tflops=round(flops_per_video * rate / 1e12, 4))  # fmt: skip
        if args.peak_tflops:
            result["mfu"] = round(flops_per_video * rate / (args.peak_tflops * 1e12), 4)
        if baseline_rate:
            result["speedup_vs_einsum"] = round(rate / baseline_rate, 3)
    setting = {"preset": preset, "mode": mode, "mask_ratio": mask_ratio, "batch": batch, "frames": args.frames,
               "kept_patches_per_frame": n_keep, "tokens": 1 + args.frames * n_keep,
               "gflop_per_video_step": round(flops_per_video / 1e9, 2), "results": results}  # fmt: skip
    for name, result in results.items():
        if "skipped" in result:
            log(f"{preset:4s} {mode:5s} mask {mask_ratio:.1f} {name:13s} skipped: {result['skipped']}")
        else:
            mfu = f" MFU {result['mfu']:.3f}" if "mfu" in result else ""
            peak = f" peak {result['peak_gib']:.1f} GiB" if result["peak_gib"] is not None else ""
            ratio = f" x{result['speedup_vs_einsum']:.2f} vs einsum" if "speedup_vs_einsum" in result else ""
            if "min_cosine_vs_einsum" in result:
                ratio += f" (cos {result['min_cosine_vs_einsum']:.5f})"
            log(f"{preset:4s} {mode:5s} mask {mask_ratio:.1f} {name:13s} {result['videos_per_s']:9.2f} videos/s "
                f"{result['tflops']:8.3f} TFLOP/s{mfu}{peak}{ratio}")
    return setting


def default_plan(args):
    """(preset, mode, mask) in priority order: the issue's goals first, so the time budget cuts the least useful."""
    if args.tiny:
        return [("tiny", mode, mask) for mode in ("infer", "train") for mask in (0.0, 0.5, 0.7)]
    return [("b16", "train", 0.5), ("b16", "infer", 0.0), ("h14", "train", 0.7), ("h14", "infer", 0.0),
            ("b16", "train", 0.0), ("b16", "train", 0.7), ("b16", "infer", 0.5), ("b16", "infer", 0.7)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="the tiny preset (CPU check in about a minute)")
    parser.add_argument("--presets", default=None, help="comma list (b16,h14,...); default: the plan's")
    parser.add_argument("--modes", default="infer,train")
    parser.add_argument("--masks", default=None, help="comma list of mask ratios; default: the plan's")
    parser.add_argument("--implementations", default=None,
                        help=f"comma list of {ALL_IMPLEMENTATIONS}; default all on CUDA, no flex/compile on CPU")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--batch", type=int, default=None, help="default: 32 (B/16), 16 (H/14), 8 (--tiny)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--autocast", choices=("bf16", "fp16", "none"), default=None,
                        help="default bf16 on CUDA, none (fp32) on CPU")
    parser.add_argument("--peak-tflops", "--peak_tflops", type=float, default=None,
                        help="peak for MFU; default 989 on CUDA (H100/H200 dense bf16)")
    parser.add_argument("--budget-s", "--budget_s", type=float, default=None,
                        help="start no new setting after this many seconds (default 270 on CUDA)")
    parser.add_argument("--limit-s", "--limit_s", type=float, default=None,
                        help="skip a warm-up (compilation) likely to end after this many seconds (default 390 on "
                        "CUDA, so that the whole run stays under 8 minutes)")
    parser.add_argument("--output", default=None, help="JSON result file")
    args = parser.parse_args()

    device = torch.device(args.device)
    autocast = args.autocast or ("bf16" if device.type == "cuda" else "none")
    args.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[autocast]
    if args.peak_tflops is None and device.type == "cuda":
        args.peak_tflops = 989.0
    budget = args.budget_s if args.budget_s is not None else (270.0 if device.type == "cuda" else math.inf)
    hard_limit = args.limit_s if args.limit_s is not None else (390.0 if device.type == "cuda" else math.inf)
    if args.implementations:
        implementations = [name.strip() for name in args.implementations.split(",")]
        unknown = set(implementations) - set(ALL_IMPLEMENTATIONS)
        if unknown:
            parser.error(f"--implementations: unknown {sorted(unknown)}; choose from {ALL_IMPLEMENTATIONS}")
    else:
        implementations = list(ALL_IMPLEMENTATIONS if device.type == "cuda" else ("einsum", "eager", "sdpa"))
    # Every (implementation, mask, mode) is its own static graph: leave room for all of them.
    torch._dynamo.config.cache_size_limit = 64
    torch._dynamo.config.accumulated_cache_size_limit = 512

    plan = default_plan(args)
    if args.presets:
        plan = [s for s in plan if s[0] in args.presets.split(",")] or [
            (p, m, r) for p in args.presets.split(",") for m in ("infer", "train") for r in (0.0, 0.5, 0.7)
        ]
    if args.masks:
        wanted = [float(m) for m in args.masks.split(",")]
        plan = list(dict.fromkeys((p, m, r) for p, m, _ in plan for r in wanted))
    plan = [s for s in plan if s[1] in args.modes.split(",")]

    lines = []

    def log(line):
        print(line, flush=True)
        lines.append(line)

    flop_check = check_issue_flop_counts()
    log(f"FLOP formula reproduces the issue's B/16 counts: {flop_check} GFLOP (mask: forward incl. all-token proj.)")
    started = time.perf_counter()
    settings, skipped = [], []
    for preset, mode, mask_ratio in plan:
        if time.perf_counter() - started > budget:
            skipped.append([preset, mode, mask_ratio])
            log(f"{preset} {mode} mask {mask_ratio}: not run (time budget {budget:.0f} s spent)")
            continue
        settings.append(measure_setting(args, preset, mode, mask_ratio, implementations, log, started + hard_limit))
        if args.output:  # write as we go: a timeout still leaves the finished settings
            write_json(args, settings, skipped, autocast, flop_check, started)
    if args.output:
        write_json(args, settings, skipped, autocast, flop_check, started)
        print(f"wrote {args.output}")


def write_json(args, settings, skipped, autocast, flop_check, started):
    device = torch.device(args.device)
    machine = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }  # fmt: skip
    partial = f"{args.output}.partial"  # written beside, then renamed: a kill mid-write leaves the last good file
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump({"machine": machine, "autocast": autocast, "peak_tflops": args.peak_tflops, "repeats": args.repeats,
                   "issue_flop_check_gflop": flop_check, "elapsed_s": round(time.perf_counter() - started, 1),
                   "settings": settings, "not_run": skipped}, handle, indent=1)  # fmt: skip
    os.replace(partial, args.output)


if __name__ == "__main__":
    main()
