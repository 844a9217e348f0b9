"""The Functions app (functions/function_app.py) loaded as the Functions host loads it, by path: its
functions by name, each the plain Python function the host would call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.helpers.by_path import load


def load_functions() -> dict[str, Callable[..., Any]]:
    module = load("functions/function_app.py")
    return {f.get_function_name(): f.get_user_function() for f in module.app.get_functions()}
