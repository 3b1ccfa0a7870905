"""What `raypriv.method.runtime.keep_freed_memory` buys: one attacker training epoch with glibc's default
allocator and with freed memory kept, each arm in its own process (the setting cannot be undone).

    python bench/allocator.py [--models regnet_x_400mf,shufflenet_v2_x0_5] [--threads 1] [--rounds 1]

An epoch is what the two-fold evaluation does per epoch at the laptop preset: 20 training steps of
32 clips x 2 frames (1 channel, 48x48) and a validation pass over 208 clips x 12 frames in batches
of 64 clips. Prints seconds per epoch and the process's user / system CPU time for each arm.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _epoch(models: list[str], threads: int, keep: bool) -> dict:
    import torch
    import torch.nn.functional as F

    from raypriv.method.models import create_model
    from raypriv.method.runtime import keep_freed_memory

    if keep:
        keep_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {}
    for name in models:
        model = create_model("budget", name, num_classes=13, in_channels=1)
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        x, y = torch.rand(32, 1, 2, 48, 48), torch.randint(0, 13, (32,))
        val = torch.rand(64, 1, 12, 48, 48)

        def train_step() -> None:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

        model.train()
        train_step()  # warm-up
        start = time.perf_counter()
        for _ in range(20):
            train_step()
        train = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            model(val[:8])
            start = time.perf_counter()
            for _ in range(3):
                model(val)
            model(val[:16])  # 208 clips = 3 batches of 64 + 16
            val_s = time.perf_counter() - start
        out[name] = {"train_s": train, "val_s": val_s, "epoch_s": train + val_s}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"models": out, "user_s": usage.ru_utime, "sys_s": usage.ru_stime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="regnet_x_400mf,shufflenet_v2_x0_5")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two arms this many times")
    parser.add_argument("--arm", choices=["default", "keep"], help=argparse.SUPPRESS)  # one arm, in a child
    args = parser.parse_args()
    models = args.models.split(",")
    if args.arm:
        print(json.dumps(_epoch(models, args.threads, args.arm == "keep")))
        return
    print(f"| round | allocator | {' | '.join(f'{m} s/epoch' for m in models)} | user s | sys s |  ({args.threads} threads)")
    print("|---|---|" + "---|" * len(models) + "---|---|")
    ratios = []
    for r in range(args.rounds):
        arms = {}
        for arm in ("default", "keep"):
            child = subprocess.run([sys.executable, __file__, "--arm", arm, "--models", args.models,
                                    "--threads", str(args.threads)], capture_output=True, text=True, check=True)
            arms[arm] = json.loads(child.stdout.strip().splitlines()[-1])
            row = arms[arm]
            cells = " | ".join(f"{row['models'][m]['epoch_s']:.1f}" for m in models)
            print(f"| {r} | {arm} | {cells} | {row['user_s']:.1f} | {row['sys_s']:.1f} |", flush=True)
        ratios += [arms["default"]["models"][m]["epoch_s"] / arms["keep"]["models"][m]["epoch_s"] for m in models]
    print(f"default / keep, per model and round: {', '.join(f'{x:.2f}' for x in ratios)}")


if __name__ == "__main__":
    main()
