"""Data parallelism of the one loop in the cross-dataset setting: 2 torch ranks must take the same
decisions on the video and the image pipelines (f_T's check, the budget models' batch cMAP that ends
their phase), as on SBU (tests/test_distributed.py)."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytestmark = pytest.mark.skipif(not dist.is_available() or not sys.platform.startswith("linux"),
                                reason="spawned gloo ranks on loopback")

OVERRIDES = ("adversarial.iterations=4", "adversarial.restart_every=3", "adversarial.budget_threshold=0.6",
             "pretrain.target_epochs=2", "pretrain.budget_epochs=2", "pretrain.patience=2")


def _train(rank: int, world: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    from raypriv.method.adversarial import train_adversarial
    from raypriv.method.config import load_run_config
    from raypriv.method.data import load_run_data

    dist.init_process_group("gloo", store=dist.FileStore(store, world), rank=rank, world_size=world)
    cfg = load_run_config("search_spaces/ucf101-vispr.yaml", "smoke", OVERRIDES)
    trained = train_adversarial(cfg, load_run_data(cfg.data, synthetic=True), device=torch.device("cpu"))
    torch.save({"history": trained.history, "degrader": trained.degrader.state_dict(),
                "pretrain": trained.pretrain}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_agree_on_every_decision(tmp_path):
    mp.start_processes(_train, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, start_method="spawn")
    zero, first = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    for key, value in zero["degrader"].items():
        assert torch.equal(value, first["degrader"][key]), key
    keys = ("target_val_acc", "budget_val_acc", "budget_train_acc", "target_steps", "budget_steps", "loss")
    assert [{k: r[k] for k in keys} for r in zero["history"]] == [{k: r[k] for k in keys} for r in first["history"]]
    assert zero["pretrain"] == first["pretrain"]
