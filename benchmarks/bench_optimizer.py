"""Optimiser step time: `--optim adamw_original` (the original's rule) vs `adamw_torch` (and `adamw_torch_fused`),
plus the cost of `--zero_grad_to_none false`, on the recipe's parameter groups.

The model is a preset with random weights (`tiny`: the demo's model; `b16`: the B/16 size), frozen as the paper
recipe (`text_layers<9`), gradients random. The optimiser classes and arguments are the ones `TVTSv2Trainer`
builds (`get_optimizer_cls_and_kwargs` with the paper recipe's values), over `parameter_groups_for`. Every round
times one step of each variant in turn (interleaved, in a random order); the median over rounds is reported, with the
ratio to `adamw_torch`. Gradient clearing: `model.zero_grad()` (to None) vs the trainer's zero-filling callback
(zero in place, keep, give back). Times are the thread's CPU time (`time.thread_time`: on a shared machine the
wall clock mostly measures the other processes); the wall-clock medians are reported too.

    taskset -c 0 python benchmarks/bench_optimizer.py --preset tiny --rounds 200
    taskset -c 0 python benchmarks/bench_optimizer.py --preset b16 --rounds 7
"""

import argparse
import json
import os
import platform
import random
import statistics
import time

import torch

from modeling_tvtsv2 import TVTSv2Config, TVTSv2ForPreTraining
from modeling_tvtsv2.pretraining.freezing import FreezeSchedule
from modeling_tvtsv2.pretraining.optimization import parameter_groups_for
from modeling_tvtsv2.pretraining.trainer import TVTSv2Trainer, TVTSv2TrainingArguments, ZeroFilledGradientsCallback


def build(preset: str):
    torch.manual_seed(0)
    model = TVTSv2ForPreTraining(TVTSv2Config.from_preset(preset))
    names = [name for name, _ in model.named_parameters()]
    frozen = FreezeSchedule.parse("text_layers<9").always_frozen_names(names, model.config.num_frozen_text_layers)
    for name, param in model.named_parameters():
        param.requires_grad_(name not in frozen)
        if param.requires_grad:
            param.grad = torch.randn_like(param) * 1e-3
    return model


def optimizer_for(model, optim: str, foreach: bool | None = None):
    args = TVTSv2TrainingArguments(output_dir="/tmp/bench_optimizer", optim=optim, use_cpu=True, report_to="none")
    cls, kwargs = TVTSv2Trainer.get_optimizer_cls_and_kwargs(args, model)
    if foreach is not None:
        kwargs = {**kwargs, "foreach": foreach}
    groups = parameter_groups_for(model, args)
    for group in groups:
        group.pop("param_names")
    return cls(groups, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build(args.preset)
    trainable = [p for p in model.parameters() if p.requires_grad]
    variants = {
        "adamw_torch": optimizer_for(model, "adamw_torch"),
        "adamw_torch_fused": optimizer_for(model, "adamw_torch_fused"),
        "adamw_original": optimizer_for(model, "adamw_original"),
        "adamw_original (foreach=True)": optimizer_for(model, "adamw_original", foreach=True),
    }
    grads = [p.grad for p in trainable]
    originals = [p.detach().clone() for p in trainable]

    class _Trainer:  # what the callback reads
        pass

    holder = _Trainer()
    holder.model = model
    callback = ZeroFilledGradientsCallback(holder)

    def clear_to_none():
        model.zero_grad()

    def clear_zero_filled():
        callback.on_optimizer_step(None, None, None)
        model.zero_grad()
        callback.on_step_begin(None, None, None)

    def restore_grads():
        for param, grad in zip(trainable, grads):
            param.grad = grad

    load = [os.getloadavg()]
    times = {name: [] for name in [*variants, "zero_grad (to None)", "zero-filled (callback)"]}
    walls = {name: [] for name in times}
    names = list(variants)
    shuffler = random.Random(0)
    for _ in range(args.rounds):
        # a fresh random order every round: a variant that always ran right after another would find that one's
        # tensors in the caches
        order = shuffler.sample(names, len(names))
        for name in order:
            start, wall = time.thread_time(), time.perf_counter()
            variants[name].step()
            times[name].append(time.thread_time() - start)
            walls[name].append(time.perf_counter() - wall)
            with torch.no_grad():  # keep the weights from drifting (values do not change the cost)
                for param, value in zip(trainable, originals):
                    param.copy_(value)
        for name, clear in (("zero_grad (to None)", clear_to_none), ("zero-filled (callback)", clear_zero_filled)):
            start, wall = time.thread_time(), time.perf_counter()
            clear()
            times[name].append(time.thread_time() - start)
            walls[name].append(time.perf_counter() - wall)
            restore_grads()
    load.append(os.getloadavg())
    base = statistics.median(times["adamw_torch"])
    result = {
        "preset": args.preset,
        "trainable_parameters": sum(p.numel() for p in trainable),
        "trainable_tensors": len(trainable),
        "rounds": args.rounds,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "load_average_before_after": load,
        "median_cpu_ms": {name: round(statistics.median(t) * 1e3, 4) for name, t in times.items()},
        "ratio_to_adamw_torch": {name: round(statistics.median(t) / base, 3) for name, t in times.items()},
        "median_wall_ms": {name: round(statistics.median(t) * 1e3, 4) for name, t in walls.items()},
    }
    print(json.dumps(result, indent=1))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
