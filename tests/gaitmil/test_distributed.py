"""Two gloo processes on CPU compute what one process computes on the whole batch: the gathered
batch-all triplet, the cross-rank batch norm and the DDP-averaged gradients of a training step."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from gaitmil.distributed import (
    CrossRankBatchNorm,
    convert_batchnorm,
    distributed_gait_mil_loss,
    gather_with_local_grad,
)
from gaitmil.losses import LossConfig, batch_all_triplet, gait_mil_loss
from gaitmil.model import GaitMIL, GaitMILConfig
from gaitmil.train import TrainStep
from tests.gaitmil.conftest import SMALL, walk_batch

WORLD = 2
BATCH, FRAMES = (
    8,
    6,
)  # 4 subjects x 2 walks; each rank takes 2 subjects, as PKBatchSampler shares them


# with the class-level contrastive term on, so its gather-and-scale is checked as the triplet's
LOSS = LossConfig(supcon_weight=0.5)


def _batch():
    sils = walk_batch(BATCH, FRAMES, seed=3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 0])
    ids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    return sils, labels, ids


def _model() -> GaitMIL:
    torch.manual_seed(0)
    model = GaitMIL(GaitMILConfig.from_preset("tiny", **SMALL))
    model.set_centroids(torch.rand(model.config.phases, model.centroids.shape[1]) * 0.1)
    return model.train()


def _step(model: nn.Module, loss_fn, sils, labels, ids):
    out, part_logits = model(sils)
    loss, parts = loss_fn(out.embeddings, part_logits, labels, ids, LOSS)
    loss.backward()
    return out, parts


def _rank_main(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        sils, labels, ids = _batch()
        share = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
        model = convert_batchnorm(_model())
        ddp = nn.parallel.DistributedDataParallel(TrainStep(model))
        out, parts = _step(ddp, distributed_gait_mil_loss, sils[share], labels[share], ids[share])
        local_only = batch_all_triplet(out.embeddings.detach(), ids[share])[0].item()
        # the gathered embeddings, as every rank sees them
        gathered = gather_with_local_grad(out.embeddings.detach())
        loss = torch.tensor([parts["loss"], parts["triplet"], parts["ce"], parts["supcon"]])
        dist.all_reduce(loss)
        torch.save(
            {
                "loss": (loss / WORLD).tolist(),
                "local_only_triplet": local_only,
                "gathered": gathered,
                "grads": {n: p.grad.clone() for n, p in model.named_parameters()},
                "buffers": {n: b.clone() for n, b in model.named_buffers()},
                "synced_layers": sum(isinstance(m, CrossRankBatchNorm) for m in model.modules()),
            },
            f"{out_dir}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


RANKS_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    # Bounded: one full-suite run on a clean clone saw the two ranks never return (a gloo
    # rendezvous that did not complete, not reproduced alone). A stuck pair is killed and the
    # rendezvous retried once in a fresh folder, so the suite never hangs on it.
    for attempt in range(2):
        d = tmp_path_factory.mktemp(f"ddp{attempt}")
        context = mp.start_processes(
            _rank_main,
            args=(str(d / "init"), str(d)),
            nprocs=WORLD,
            join=False,
            start_method="spawn",
        )
        deadline = time.monotonic() + RANKS_TIMEOUT_S
        while not context.join(timeout=2):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                break
        else:
            return [torch.load(d / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    pytest.fail(f"the two gloo ranks did not finish within {RANKS_TIMEOUT_S} s, twice")


@pytest.fixture(scope="module")
def one_process():
    sils, labels, ids = _batch()
    model = _model()
    out, parts = _step(TrainStep(model), gait_mil_loss, sils, labels, ids)
    return {
        "loss": [parts["loss"], parts["triplet"], parts["ce"], parts["supcon"]],
        "embeddings": out.embeddings.detach(),
        "grads": {n: p.grad.clone() for n, p in model.named_parameters()},
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
    }


def test_gathered_loss_equals_the_single_process_loss(two_ranks, one_process):
    for r in two_ranks:
        # the triplet each rank computes is the one of the whole batch
        assert r["loss"][1] == pytest.approx(one_process["loss"][1], rel=1e-4)
    assert two_ranks[0]["loss"] == pytest.approx(one_process["loss"], rel=1e-4)
    # without the gather a rank sees 2 of the 4 subjects and gets another loss: the test can fail
    assert two_ranks[0]["local_only_triplet"] != pytest.approx(one_process["loss"][1], rel=1e-2)


def test_cross_rank_batch_norm_matches_whole_batch_statistics(two_ranks, one_process):
    assert two_ranks[0]["synced_layers"] == sum(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in _model().modules()
    )
    # embeddings after a forward with the batch split over 2 ranks equal those of one process
    torch.testing.assert_close(
        two_ranks[0]["gathered"], one_process["embeddings"], rtol=1e-4, atol=1e-5
    )
    for name, ref in one_process["buffers"].items():
        for r in two_ranks:
            torch.testing.assert_close(r["buffers"][name], ref, rtol=1e-4, atol=1e-6, msg=name)


def test_ddp_gradients_equal_the_single_process_gradients(two_ranks, one_process):
    for name, ref in one_process["grads"].items():
        scale = float(ref.abs().max()) or 1.0
        for r in two_ranks:
            diff = float((r["grads"][name] - ref).abs().max())
            assert diff <= 1e-3 * scale + 1e-7, (name, diff, scale)
    # the gradient is not trivially zero
    assert np.mean([float(g.abs().sum()) for g in one_process["grads"].values()]) > 0


def test_one_process_is_exactly_the_plain_loss():
    sils, labels, ids = _batch()
    model = _model()
    out, part_logits = model.forward_with_part_logits(sils)
    for cfg in (None, LOSS):
        a, pa = gait_mil_loss(out.embeddings, part_logits, labels, ids, cfg)
        b, pb = distributed_gait_mil_loss(out.embeddings, part_logits, labels, ids, cfg)
        assert torch.equal(a, b) and pa == pb
    assert gather_with_local_grad(ids) is ids
    # without a process group the converted norm is plain batch norm
    bn = nn.BatchNorm2d(3).train()
    synced = convert_batchnorm(nn.Sequential(nn.BatchNorm2d(3).train()))[0]
    x = torch.randn(4, 3, 5, 5)
    torch.testing.assert_close(synced(x), bn(x))
    torch.testing.assert_close(synced.running_var, bn.running_var)
    assert set(synced.state_dict()) == set(bn.state_dict())
