"""Data parallelism of the one loop (no second loop): W = 2 torch ranks against W = 1, on the smoke
profile's tiny clips, in plain torch processes (the sweep's Ray Train workers join the same kind of
process group, raypriv.sweep.distributed)."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")

OVERRIDES = ("adversarial.iterations=6", "adversarial.restart_every=4", "adversarial.target_threshold=1.0",
             "adversarial.budget_threshold=1.0", "pretrain.target_epochs=2", "pretrain.budget_epochs=2",
             "pretrain.patience=2")


def _train(rank: int, world: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    from raypriv.method.adversarial import train_adversarial
    from raypriv.method.config import load_run_config
    from raypriv.method.run import load_splits

    if world > 1:
        dist.init_process_group("gloo", store=dist.FileStore(store, world), rank=rank, world_size=world)
    cfg = load_run_config("search_spaces/sbu.yaml", "smoke", OVERRIDES)
    data, actions, identities = load_splits(cfg, synthetic=True)
    trained = train_adversarial(cfg, data, num_actions=actions, num_identities=identities, device=torch.device("cpu"))
    torch.save({"history": trained.history, "degrader": trained.degrader.state_dict(),
                "pretrain": trained.pretrain}, f"{out}/rank{rank}.pt")
    if world > 1:
        dist.destroy_process_group()


def _run(world: int, tmp_path) -> list[dict]:
    out = tmp_path / f"w{world}"
    out.mkdir()
    mp.start_processes(_train, args=(world, str(out / "store"), str(out)), nprocs=world, start_method="spawn")
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(world)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="spawned gloo ranks on loopback")
def test_two_ranks_agree_on_every_decision_and_follow_one_rank_within_tolerance(tmp_path):
    one, = _run(1, tmp_path)
    zero, first = _run(2, tmp_path)
    # the ranks hold the same f_d and took the same decisions (f_T's check, the budget accuracy
    # that ends the budget phase, the loss every step averaged over them)
    for key, value in zero["degrader"].items():
        assert torch.equal(value, first["degrader"][key]), key
    for a, b in zip(zero["history"], first["history"]):
        assert {k: a[k] for k in ("target_val_acc", "budget_train_acc", "target_steps", "budget_steps", "loss")} == \
               {k: b[k] for k in ("target_val_acc", "budget_train_acc", "target_steps", "budget_steps", "loss")}
    assert zero["pretrain"] == first["pretrain"]
    # Against one rank with the same global batches: the same steps, and f_d's objective within 10 %
    # per iteration (BatchNorm in f_T's training mode normalises each rank's half-batch on its own).
    assert [r["target_steps"] for r in zero["history"]] == [r["target_steps"] for r in one["history"]]
    for a, b in zip(zero["history"], one["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=0.10), (a["iteration"], a["loss"], b["loss"])
