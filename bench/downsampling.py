"""Measure action vs identity accuracy under spatial downsampling on the synthetic SBU set.

    python bench/downsampling.py --preset laptop --factors 1,2,4,8,16

Prints a markdown table (the one in the README) and each model's epochs and wall time.
"""

from __future__ import annotations

import argparse
import time

import torch

from raypriv.method.baselines import DownsamplingRow, format_table, measure_downsampling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="laptop")
    parser.add_argument("--factors", default="1,2,4,8,16", help="comma-separated downsampling factors")
    parser.add_argument("--action-model", default="c3d_lite")
    parser.add_argument("--identity-model", default="smallcnn_d3_w16")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default="action,identity", help="comma-separated: action, identity")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows = measure_downsampling(
        args.preset, tuple(int(f) for f in args.factors.split(",")), action_model=args.action_model,
        identity_model=args.identity_model, epochs=args.epochs, seed=args.seed,
        tasks=tuple(args.tasks.split(",")), on_row=_print_row,
    )
    print(format_table(rows))
    print(f"total {time.perf_counter() - start:.0f} s, {args.threads} threads, preset {args.preset}")


def _print_row(row: DownsamplingRow) -> None:
    print(f"s={row.factor:<3d} {row.task:8s} {row.model:16s} test {100 * row.test_accuracy:5.1f} %  "
          f"{row.epochs:2d} epochs  {row.seconds:6.1f} s", flush=True)


if __name__ == "__main__":
    main()
