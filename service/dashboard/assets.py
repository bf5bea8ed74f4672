"""Static assets: the dashboard's own (CSS, JS) and Plotly's from its installed package."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path


@functools.cache
def plotly_js_path() -> Path:
    """``plotly.min.js`` inside the installed ``plotly`` package (found without importing it)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the plotly package is not installed (pip install 'taskrec[service]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the installed plotly package")
    return path
