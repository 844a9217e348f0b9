"""The Functions app (functions/function_app.py) loaded as the Functions host loads it, by path: its
functions by name, each the plain Python function the host would call."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

APP = Path(__file__).resolve().parents[2] / "functions" / "function_app.py"


def load_functions() -> dict[str, Callable[..., Any]]:
    spec = importlib.util.spec_from_file_location("function_app", APP)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {f.get_function_name(): f.get_user_function() for f in module.app.get_functions()}
