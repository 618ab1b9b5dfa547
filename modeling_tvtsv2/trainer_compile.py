"""`--torch_compile` for `TVTSv2Trainer`: one static-shape graph per input shape instead of dynamo's automatic
dynamic shapes.

transformers' Trainer hands accelerate a `TorchDynamoPlugin(dynamic=None)`: after the first recompile (the
epoch's last, smaller batch, or evaluation's unmasked videos after training's tube-masked ones) dynamo retraces
with symbolic sizes, whose kernels tile attention and matmuls worse. A TVTSv2 run sees only a few shapes (one per
batch size and mask ratio; texts are padded to a fixed length), so static graphs cost a few compilations and no
speed.
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
