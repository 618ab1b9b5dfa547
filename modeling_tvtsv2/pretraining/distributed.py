"""Cross-process feature gathering for the global-batch contrastive loss."""

import torch
import torch.distributed as dist


class _GatherWithGrad(torch.autograd.Function):
    """all_gather (batches of any size) with a choice of backward for this process's rows.

    * `"global"`: sum every process's gradient. Every process computes the same global loss from the same gathered
      features, so after this backward and DDP's gradient averaging the update equals that of one process holding
      the whole global batch.
    * `"original"`: keep only this process's own gradient (the original `AllGather_multi`): after DDP's averaging
      the gradient is 1/world_size of the global one.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, gradient: str = "global") -> torch.Tensor:
        world_size, rank = dist.get_world_size(), dist.get_rank()
        sizes = [torch.zeros(1, dtype=torch.long, device=tensor.device) for _ in range(world_size)]
        dist.all_gather(sizes, torch.tensor([tensor.shape[0]], dtype=torch.long, device=tensor.device))
        sizes = [int(s) for s in sizes]
        padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        buffers = [torch.empty_like(padded) for _ in range(world_size)]
        dist.all_gather(buffers, padded.contiguous())
        ctx.offset, ctx.batch, ctx.gradient = sum(sizes[:rank]), tensor.shape[0], gradient
        return torch.cat([buffer[:size] for buffer, size in zip(buffers, sizes)], dim=0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad_output = grad_output.contiguous()
        if ctx.gradient == "global":
            dist.all_reduce(grad_output, op=dist.ReduceOp.SUM)
        return grad_output[ctx.offset : ctx.offset + ctx.batch], None


def distributed_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_with_grad(tensor: torch.Tensor, gradient: str = "global") -> torch.Tensor:
    """Concatenate `tensor` from every process in rank order (identity without torch.distributed). `gradient`:
    `"global"` or `"original"`, see `_GatherWithGrad`."""
    if gradient not in ("global", "original"):
        raise ValueError(f"gradient must be 'global' or 'original', got {gradient!r}")
    if distributed_world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor, gradient)
