"""The documentation site says what the code and the measurements say.

``make docs`` builds the site with warnings as errors and runs every snippet with
Sphinx's doctest builder; these tests guard what a build cannot see: that the API
reference lists every public name, that every Python snippet is one the doctest builder
runs, and that the benchmark tables quote the results files.

Regenerate the benchmark tables after a ``make bench`` with::

    .venv/bin/python tests/test_docs.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

import wsgisse

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"
# The pages this project writes snippets in; deployment.rst and redis.rst show shell,
# proxy configuration and JavaScript, which the suite checks against real servers.
SERVERS = ["wsgisse", "wsgisse-redis", "sse-starlette", "flask-sse", "gevent-minimal"]
# A table is named by its results file, and by a part of it after "#" (its own columns).
BENCH_COLUMNS = {
    "latest.json": [*SERVERS, "nchan", "blaster"],
    "full-run.json": [*SERVERS, "nchan", "blaster"],
    "full-run.json#users": ["wsgisse-audience", "wsgisse-channels", "nchan-channels"],
}
BENCH_TABLE = re.compile(r"^\.\. bench-table: (\S+)\n\n((?:.+\n)+)", re.MULTILINE)


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_the_api_reference_documents_every_public_name() -> None:
    api = read("api.rst")
    module = api.index(".. module:: wsgisse\n")
    end = api.index(".. automodule::")
    documented = set(re.findall(r"^\.\. (?:auto\w+|data):: (\w+)$", api[module:end], re.MULTILINE))
    assert documented == {*wsgisse.__all__, "__version__"}


@pytest.mark.parametrize(
    "module",
    [
        "wsgisse.testing",
        "wsgisse.integrations.flask",
        "wsgisse.integrations.bottle",
        "wsgisse.integrations.gunicorn",
        "wsgisse.backends.redis",
    ],
)
def test_the_api_reference_documents_the_integrations_and_backends(module: str) -> None:
    assert f".. automodule:: {module}\n" in read("api.rst")


def test_every_python_snippet_of_the_docs_is_run_by_the_doctest_builder() -> None:
    for page in sorted(DOCS.glob("*.rst")):
        text = page.read_text(encoding="utf-8")
        assert ".. code-block:: python" not in text, (
            f"{page.name}: write Python as `.. testcode::` or `.. doctest::` so that "
            "`make docs` runs it"
        )


def test_every_page_is_in_the_site() -> None:
    index = read("index.rst")
    entries = set(re.findall(r"^   ([\w-]+)$", index, re.MULTILINE))
    pages = {page.stem for page in DOCS.glob("*.rst")} - {"index"}
    assert pages <= entries


def test_the_site_includes_the_changelog() -> None:
    assert read("changes.rst").strip() == ".. include:: ../CHANGES.rst"


def _figure(value: Any) -> str:
    """A figure as the tables print it: three significant digits or so, or a dash."""
    if value is None or value == -1:
        return "-"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return f"{value:,}"


def bench_table(name: str) -> str:
    """The reStructuredText table of ``benchmarks/results/NAME`` (``FILE#part``: the
    columns of that part, and only the rows that have a figure in one of them)."""
    run = json.loads((RESULTS / name.partition("#")[0]).read_text(encoding="utf-8"))
    columns = BENCH_COLUMNS[name]
    head = ["scenario", "figure", *columns]
    rows = [
        [row["scenario"], row["figure"], *(_figure(row["values"].get(c)) for c in columns)]
        for row in run["table"]
        if any(row["values"].get(c) is not None for c in columns)  # rows of other columns
    ]
    widths = [max(len(cell) for cell in column) for column in zip(head, *rows, strict=True)]
    rule = "  ".join("=" * width for width in widths)

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([rule, line(head), rule, *map(line, rows), rule]) + "\n"


def test_the_benchmark_tables_quote_the_results_files() -> None:
    tables = dict(BENCH_TABLE.findall(read("benchmarks.rst")))
    assert set(tables) == set(BENCH_COLUMNS)
    for name, table in tables.items():
        assert table == bench_table(name), (
            f"docs/benchmarks.rst's table of {name} differs from the file: regenerate it "
            "with `python tests/test_docs.py`"
        )


def regenerate() -> None:
    """Rewrite docs/benchmarks.rst's tables from benchmarks/results/."""
    path = DOCS / "benchmarks.rst"
    text = path.read_text(encoding="utf-8")
    text = BENCH_TABLE.sub(lambda m: f".. bench-table: {m[1]}\n\n{bench_table(m[1])}", text)
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    regenerate()
    sys.exit(0)
