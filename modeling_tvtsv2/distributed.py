"""Cross-process feature gathering for the global-batch contrastive loss."""

import torch
import torch.distributed as dist


class _GatherWithGrad(torch.autograd.Function):
    """all_gather (batches of any size) whose backward sums every process's gradient for this process's rows.

    Every process computes the same global loss from the same gathered features, so after this backward and DDP's
    gradient averaging the update equals that of one process holding the whole global batch.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        world_size, rank = dist.get_world_size(), dist.get_rank()
        sizes = [torch.zeros(1, dtype=torch.long, device=tensor.device) for _ in range(world_size)]
        dist.all_gather(sizes, torch.tensor([tensor.shape[0]], dtype=torch.long, device=tensor.device))
        sizes = [int(s) for s in sizes]
        padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        buffers = [torch.empty_like(padded) for _ in range(world_size)]
        dist.all_gather(buffers, padded.contiguous())
        ctx.offset, ctx.batch = sum(sizes[:rank]), tensor.shape[0]
        return torch.cat([buffer[:size] for buffer, size in zip(buffers, sizes)], dim=0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        grad_output = grad_output.contiguous()
        dist.all_reduce(grad_output, op=dist.ReduceOp.SUM)
        return grad_output[ctx.offset : ctx.offset + ctx.batch]


def distributed_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from every process in rank order (identity without torch.distributed)."""
    if distributed_world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)
