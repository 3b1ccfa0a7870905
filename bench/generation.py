"""Time the generation of every synthetic preset's splits.

    python bench/generation.py [--threads N] [--presets tiny,laptop,paper]
"""

from __future__ import annotations

import argparse
import time

import torch

from raypriv.method.data import PRESETS, SPLITS
from raypriv.method.data.synthetic import SyntheticSBU


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--presets", default=",".join(PRESETS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"| preset | split | clips | seconds | MiB (uint8) |  ({args.threads} threads)")
    print("|---|---|---|---|---|")
    for name in args.presets.split(","):
        for split in SPLITS:
            ds = SyntheticSBU(split, preset=name)
            start = time.perf_counter()
            clips, masks = ds.tensors()
            seconds = time.perf_counter() - start
            mib = (clips.numel() + masks.numel()) / 2**20
            print(f"| {name} | {split} | {len(ds)} | {seconds:.2f} | {mib:.0f} |", flush=True)


if __name__ == "__main__":
    main()
