"""`--torch_compile` for `TVTSv2Trainer`: one static-shape graph per input shape instead of dynamo's automatic
dynamic shapes.

transformers' Trainer hands accelerate a `TorchDynamoPlugin(dynamic=None)`: after the first recompile for a new size
(a smaller batch, another tube-mask ratio) dynamo retraces with symbolic sizes, whose kernels tile attention and
matmuls worse. A TVTSv2 run meets only a few shapes (texts are padded to a fixed length): its transcript and caption
batches, and rarely a batch shortened by skipped samples or the one-sample placeholder of an all-skipped batch; a
static graph for each costs a few compilations and no speed.

dynamo's `recompile_limit` (8 graphs per function in torch 2.13) is left as it is: a run that meets more shapes runs
the extra ones eagerly (with a warning) and keeps its compiled graphs for the others, which beats compiling a graph
for a batch seen once (with `fullgraph` dynamo stops instead). Evaluation during or after training runs the
uncompiled model, as in transformers (only an `evaluate()` before any training compiles, through accelerate).
"""

from typing import Any

from transformers.utils import logging

logger = logging.get_logger(__name__)


class StaticShapeCompileMixin:
    """For a `transformers.Trainer`: with `args.torch_compile`, the dynamo plugin gets
    `dynamic=args.torch_compile_dynamic` (`False` by default: static shapes; `None`: dynamo's automatic dynamic
    shapes, or accelerate's `ACCELERATE_DYNAMO_USE_DYNAMIC`). Compilation configured only through accelerate
    (`accelerate launch --dynamo_backend ...` without `--torch_compile`) is left as accelerate configured it."""

    def _build_accelerator_args(self, **kwargs) -> dict[str, Any]:
        args = super()._build_accelerator_args(**kwargs)
        plugin = args.get("dynamo_plugin")
        requested = getattr(self.args, "torch_compile_dynamic", False)
        # transformers forces `dynamic=False` for the Neuron backend (it cannot compile dynamic shapes): keep that.
        if plugin is None or not self.args.torch_compile or self.args.torch_compile_backend == "neuron":
            return args
        if requested is not None:  # None: what accelerate chose (ACCELERATE_DYNAMO_USE_DYNAMIC, else automatic)
            plugin.dynamic = requested
        logger.info(
            "torch.compile: backend %s, %s", plugin.backend.value.lower(),
            {False: "static shapes (one graph per batch shape)", True: "dynamic shapes"}.get(
                plugin.dynamic, "automatic dynamic shapes"
            ),
        )  # fmt: skip
        return args
