"""How hard the property-based tests (hypothesis) search.

Under `CI=true` the search is derandomized: every machine and every run tries the same examples, so a
commit that passes once passes everywhere. Elsewhere each run draws new examples. `SEARCH_SCALE=N`
multiplies every test's example budget for a wide randomized search (README, "Robustness").
"""

from __future__ import annotations

import os

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SCALE = float(os.environ.get("SEARCH_SCALE", "1"))


def examples(budget: int) -> int:
    """A test's example budget, scaled for a wide search."""
    return max(1, round(budget * SCALE))
