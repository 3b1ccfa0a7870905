"""Shared test settings."""

import torch

# One thread: the suite's tiny tensors gain nothing from more, and two threads on a busy 2-core
# machine made some backward passes 50x slower (measured on test_models.py).
torch.set_num_threads(1)
