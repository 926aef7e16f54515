"""Sphinx configuration of the wsgisse documentation site (``make docs``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The site documents the work tree's package, installed editable by `make dev`; this
# makes a plain `sphinx-build docs out` from a checkout find it too.
sys.path.insert(0, str(ROOT))

import wsgisse  # noqa: E402 - needs the path above

project = "wsgisse"
author = "wsgisse contributors"
copyright = "wsgisse contributors, MIT licensed"  # noqa: A001 - Sphinx's own setting name
release = wsgisse.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"wsgisse {release}"
html_static_path: list[str] = []

# Every cross-reference must resolve (`make docs` runs with -n -W), with two kinds of
# exceptions, each listed by name so that a new unresolved reference still fails:
# - the site is built offline (no intersphinx inventories), so names of the standard
#   library, typing and the frameworks cannot resolve;
# - private names that the docstrings mention (the lead may export or reword them).
nitpicky = True
_EXTERNAL = [
    "WSGIApplication",
    "WSGIEnvironment",
    "StartResponse",
    "Flask",
    "flask.wrappers.Response",
    "flask.stream_with_context",
    "bottle.PluginError",
    "redis.Redis",
    "queue.Empty",
]
_PRIVATE = [
    "ChannelsSpec",
    "OnConnect",
    "OnDisconnect",
    "ChannelSource",
    "Decision",
    "DEFAULT_HEADERS",
    "DirectWriter",
    "FastPath",
    "wsgisse.backends._redis_fleet.FleetMixin",
    "FlaskAuthorizer",
    "MAX_ID_LENGTH",
    "MultiSubscription",
    "SlowPolicy",
    "SYNC_TIMEOUT",
    "stats",
]
nitpick_ignore = [
    (role, name)
    for name in _EXTERNAL + _PRIVATE
    for role in ("py:class", "py:data", "py:exc", "py:func", "py:attr", "py:obj")
]
nitpick_ignore_regex = [
    (r"py:(class|exc|data|obj)", r"(collections\.abc|typing|_typeshed)\..*"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Annotations name wsgisse's own types by their public names.
autodoc_type_aliases = {"Decision": "wsgisse.Decision"}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# The doctest builder runs every `.. testcode::` and `.. doctest::` block of the site, in
# the docs' own directory, with the examples importable.
doctest_global_setup = f"""
import sys
# Flask finds an app's root path from its import name; a snippet's module is ours.
__name__ = "docs_snippet"
sys.path.insert(0, {str(ROOT / "examples")!r})
"""
doctest_test_doctest_blocks = "default"


def _restore_attribute_sentences(
    app: object, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """Undo napoleon's reading of a sentence as an attribute's type.

    napoleon takes the first ``words: more words`` of an attribute's docstring as its
    type (``:type: words``); wsgisse's docstrings start with a sentence ("How many events
    the log holds: ..."), never a type, so a "type" with a space is put back in front.
    """
    del app, name, obj, options
    if what not in {"attribute", "data", "property"}:
        return
    for index, line in enumerate(lines):
        if line.startswith(":type: ") and " " in line.removeprefix(":type: ").strip():
            sentence = line.removeprefix(":type: ").strip()
            del lines[index]
            while lines and not lines[-1].strip():
                lines.pop()
            first = next((i for i, text in enumerate(lines) if text.strip()), None)
            if first is None:
                lines.append(sentence)
            else:
                lines[first] = f"{sentence}: {lines[first].lstrip()}"
            return


def setup(app: Any) -> None:
    """Run after napoleon (priority 500) on every docstring."""
    app.connect("autodoc-process-docstring", _restore_attribute_sentences, priority=600)
