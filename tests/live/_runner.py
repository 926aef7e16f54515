"""What the server runners in this folder share: their command line and app loading."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import Any


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``--host``, ``--port`` and the app as ``module:attr`` (``attr`` may be dotted)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("app", help="the WSGI app, as module:attr")
    return parser.parse_args(argv)


def load_app(ref: str) -> Any:
    """Import ``module:attr`` and return the object it names."""
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise SystemExit(f"the app must be given as module:attr, not {ref!r}")
    obj: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    if not callable(obj):
        raise SystemExit(f"{ref} is not a WSGI app: {obj!r} is not callable")
    return obj
