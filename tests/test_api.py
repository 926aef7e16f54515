"""The public namespace: what ``import wsgisse`` offers, and what it must not import."""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib.resources import files

import pytest

import wsgisse


def test_all_lists_exactly_the_public_names_the_package_exposes() -> None:
    exposed = {
        name
        for name, value in vars(wsgisse).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert sorted(wsgisse.__all__) == sorted(exposed)


def test_every_public_name_has_a_docstring() -> None:
    for name in wsgisse.__all__:
        value = getattr(wsgisse, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"


def test_every_error_derives_from_the_base_and_a_builtin() -> None:
    errors = [getattr(wsgisse, name) for name in wsgisse.__all__ if name.endswith("Error")]
    for error in errors:
        if error is wsgisse.WsgisseError:
            continue
        assert issubclass(error, wsgisse.WsgisseError)
        builtin_bases = [base for base in error.__mro__[1:] if base.__module__ == "builtins"]
        assert builtin_bases[0] is not Exception, f"{error.__name__} needs a fitting builtin"


def test_the_base_error_cannot_be_raised_directly() -> None:
    with pytest.raises(TypeError, match="abstract"):
        wsgisse.WsgisseError("vague")


def test_import_wsgisse_imports_no_framework_server_or_broker() -> None:
    code = (
        "import sys, wsgisse, wsgisse.testing;"
        "print(sorted(m for m in ('gevent', 'greenlet', 'flask', 'bottle', 'redis', 'werkzeug')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_package_is_typed_and_has_one_version() -> None:
    assert files("wsgisse").joinpath("py.typed").is_file()
    assert wsgisse.__version__.count(".") == 2
    # The browser client carries the same version (tests/test_client.py checks each file).
    client = wsgisse.client_source("wsgisse.js").decode()
    assert f'export const VERSION = "{wsgisse.__version__}";' in client
