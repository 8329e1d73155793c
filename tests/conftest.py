"""Shared fixtures: the example domain from docs/examples and the scripts of benchmarks/ are
importable in every test; tiny models built into a private cache (``tiny_cache``) and a small
tiny policy (``policy``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples" / "sort_words"
BENCHMARKS = ROOT / "benchmarks"
for folder in (EXAMPLES, BENCHMARKS):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


SMALL = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
"""The smallest tiny model the trainer tests load."""


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tiny models are built into a private cache (not the user's), one per test module."""
    old = os.environ.get("RLVR_CACHE_DIR")
    os.environ["RLVR_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("RLVR_CACHE_DIR")
    else:
        os.environ["RLVR_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def policy(tiny_cache: None) -> Any:
    """A :data:`SMALL` tiny policy on the CPU."""
    from rlvr.training.config import ModelConfig, TinyModelConfig
    from rlvr.training.policy import load_policy

    return load_policy(ModelConfig(tiny=TinyModelConfig(**SMALL)), device="cpu")
