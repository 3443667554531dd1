"""Test-suite wiring: nothing may reach a model hub, and heavy C extensions load once, up front."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy  # noqa: E402,F401  (pytester's in-process runs must not import these a second time)
import pandas  # noqa: E402,F401
import torch  # noqa: E402

torch.set_num_threads(1)
