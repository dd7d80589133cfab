"""Shared test setup: offline Hub, deterministic threads."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# One thread: tiny models gain little from two, and two stall whenever another process holds a core
# (measured: 142 s -> 8 s for the evaluation tests on a busy 2-core machine).
torch.set_num_threads(1)
