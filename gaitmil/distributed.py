"""Training on several processes as OpenGait trains ScoNet: the batch-all
triplet sees every rank's part embeddings, and batch norm uses the
statistics of the whole batch.

Why both matter: with P x K batches split over W processes, each rank holds
P / W subjects. A triplet loss on the local part alone sees only those
subjects (2 of 8 with 4 GPUs), so its negatives are few and the loss is a
different function of the batch; batch norm on a quarter of the batch has
noisier statistics than the recipe was tuned with.

- `gather_with_local_grad` concatenates every rank's tensor in rank order;
  the local slice is the caller's own tensor, so gradients flow to it (the
  others are constants here; their own ranks backpropagate through them).
- `distributed_gait_mil_loss` computes the triplet on the gathered
  embeddings and multiplies it by the world size: DDP averages gradients
  over ranks, and each rank only holds the gradient of its own slice, so
  the sum over ranks of the local parts, divided by W, is 1/W of the full
  gradient; the factor W restores it. The cross-entropy stays local (its
  mean over ranks is already the batch mean for equal shares).
- `CrossRankBatchNorm` synchronises batch statistics with differentiable
  all-reduces. torch's own `nn.SyncBatchNorm` runs only on CUDA/XPU tensors,
  and DDP refuses it on CPU modules, so it cannot be tested on a CPU
  machine; this one runs the same code on CPU (gloo) and GPU (nccl). It
  shares torch's batch-norm base class, so the state-dict keys are those of
  plain batch norm and checkpoints load into the single-process model.
"""

from __future__ import annotations

try:
    import torch
except ModuleNotFoundError as exc:  # a kiosk install has no torch
    raise ModuleNotFoundError(
        "gaitmil's model and training code need PyTorch: "
        "pip install 'gaitmil-edge[train]' (torch==2.13.0)"
    ) from exc
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce

from gaitmil.losses import LossConfig, gait_mil_loss


def world_size() -> int:
    """Processes of the default group (1 when torch.distributed is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_with_local_grad(x: Tensor) -> Tensor:
    """Every rank's `x` concatenated along dim 0 in rank order; this rank's slice is `x` itself
    (keeps its gradient). All ranks must pass the same shape. Identity with one process."""
    world = world_size()
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts, 0)


def distributed_gait_mil_loss(
    embeddings: Tensor,
    part_logits: Tensor,
    labels: Tensor,
    ids: Tensor,
    config: LossConfig | None = None,
    severity: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """gaitmil.losses.gait_mil_loss across ranks: the triplet over all ranks' embeddings and
    subject ids (scaled by the world size for DDP's gradient mean), the CE on the local batch.
    With one process the result equals gait_mil_loss exactly."""
    return gait_mil_loss(
        embeddings,
        part_logits,
        labels,
        ids,
        config,
        gather=gather_with_local_grad,
        world=world_size(),
        severity=severity,
    )


class CrossRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the batch over all ranks.

    Two differentiable all-reduces per call (sum and count, then the squared deviations), in
    float32 also under autocast; the output has the input's dtype. Running statistics use the
    unbiased variance, as torch's batch norm does. In eval mode, or with one process, it is
    plain batch norm."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        world = world_size()
        if not self.training or world == 1:
            return super().forward(input)  # plain batch norm
        dims = [0] + list(range(2, input.dim()))
        x = input.float()
        local_count = torch.tensor(
            float(x.numel() // x.shape[1]), device=x.device, dtype=torch.float32
        )
        sums = differentiable_all_reduce(torch.cat([x.sum(dims), local_count.reshape(1)]))
        count = sums[-1]
        mean = sums[:-1] / count
        shape = [1, -1] + [1] * (input.dim() - 2)
        centred = x - mean.reshape(shape)
        var = differentiable_all_reduce((centred * centred).sum(dims)) / count
        y = centred * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                unbiased = var.detach() * count / (count - 1).clamp(min=1.0)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased)
        return y.to(input.dtype)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d/2d/3d under `module` with CrossRankBatchNorm holding the same
    parameters and running statistics (in place for children; returns the module)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, CrossRankBatchNorm
    ):
        synced = CrossRankBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        synced.load_state_dict(module.state_dict())
        synced.train(module.training)
        return synced.to(next(iter(module.state_dict().values())).device)
    for name, child in module.named_children():
        module.add_module(name, convert_batchnorm(child))
    return module
