"""Shared fixtures: the example domain from docs/examples is importable in every test."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples" / "sort_words"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))
