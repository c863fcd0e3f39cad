from __future__ import annotations

import sys
from pathlib import Path

# Make `tests.harness` importable as `harness` from every tier.
sys.path.insert(0, str(Path(__file__).parent))
