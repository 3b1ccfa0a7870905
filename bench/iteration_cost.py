"""Time one adversarial iteration of the quick profile (pre-training and inner loops off).

    python bench/iteration_cost.py

Prints seconds per adversarial step (batch 16, M=4 sampled budget models) for two degraders.
"""

import time, torch
torch.set_num_threads(1)
from raypriv.method.config import load_run_config
from raypriv.method.run import load_splits
from raypriv.method.adversarial import train_adversarial
for deg in ("degrader_tiny", "degrader_small"):
    cfg = load_run_config("search_spaces/sbu.yaml", "quick", (f"models.degrader={deg}", "iterations=5", "restart_every=0",
        "pretrain.degrader_steps=0", "pretrain.target_epochs=0", "pretrain.budget_epochs=0",
        "adversarial.target_max_steps=0", "adversarial.budget_max_steps=0"))
    data, a, b = load_splits(cfg, synthetic=True)
    t = time.perf_counter()
    r = train_adversarial(cfg, data, num_actions=a, num_identities=b)
    print(deg, "budgets", r.budget_names, "adversarial step (batch 16, M=4):", round(r.seconds["adversarial"] / 5, 2), "s", flush=True)
