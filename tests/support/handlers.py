"""Load a handler's index.py under a unique module name (both handlers have an index.py)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

LAMBDA_DIR = Path(__file__).resolve().parents[2] / "lambda"


@cache
def load_handler(folder: str) -> ModuleType:
    """Import lambda/<folder>/index.py as module `<folder>_index` (cached)."""
    path = LAMBDA_DIR / folder / "index.py"
    name = folder.replace("-", "_") + "_index"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
