"""JSON conversion for records and artifacts: NaN becomes ``null``, numpy scalars Python."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def jsonable(x: Any) -> Any:
    """Floats → JSON (NaN → ``None``), numpy scalars → Python, recursively."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    if x is not None and not isinstance(x, (str, int, float, bool)):
        try:
            import pandas as pd

            if pd.isna(x):
                return None
        except (TypeError, ValueError):
            pass
        return str(x)
    return x
