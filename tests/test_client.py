"""The browser client's files: shipped, versioned with the package, and served right.

The client's behaviour is tested in the browsers (``test_client_browser.py``,
``test_client_firefox.py``) and its pure parts under ``node --test`` (``tests/js/``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest
from _servers import find_program
from flask import Flask
from werkzeug.test import Client

import wsgisse
from wsgisse._client import CLIENT_FILES, classic_script

STATIC = Path(wsgisse.__file__).parent / "static"


def call(app: Any, path: str, method: str = "GET", **headers: str) -> Any:
    return Client(validator(app)).open(path, method=method, headers=headers, buffered=True)


def test_the_client_s_version_is_the_package_s() -> None:
    source = wsgisse.client_source().decode()
    match = re.search(r'^export const VERSION = "([^"]+)";$', source, flags=re.MULTILINE)
    assert match is not None
    assert match.group(1) == wsgisse.__version__


def test_the_classic_build_is_generated_from_the_module_and_up_to_date() -> None:
    module = wsgisse.client_source("wsgisse.js").decode()
    assert wsgisse.client_source("wsgisse.global.js").decode() == classic_script(module), (
        "run `make js`"
    )
    classic = classic_script(module)
    assert "import.meta" not in classic
    assert not re.search(r"^export ", classic, flags=re.MULTILINE)


def test_the_classic_build_defines_window_wsgisse_in_node() -> None:
    script = (
        "const vm = require('vm');"
        "const ctx = {URL, EventTarget, Event, MessageEvent, setTimeout, TextDecoder};"
        "ctx.globalThis = ctx; vm.createContext(ctx);"
        f"vm.runInContext(require('fs').readFileSync({str(STATIC / 'wsgisse.global.js')!r},"
        " 'utf8'), ctx);"
        "process.stdout.write(ctx.wsgisse.VERSION + ' ' + typeof ctx.wsgisse.WsgisseEventSource);"
    )
    node = find_program("node", package="nodejs")
    result = subprocess.run([node, "-e", script], capture_output=True, text=True, check=True)
    assert result.stdout == f"{wsgisse.__version__} function"


def test_the_declarations_name_every_export_of_the_module() -> None:
    module = wsgisse.client_source("wsgisse.js").decode()
    declarations = wsgisse.client_source("wsgisse.d.ts").decode()
    exported = re.findall(r"^export (?:const|class|function) (\w+)", module, flags=re.MULTILINE)
    declared = re.findall(
        r"^export declare (?:const|class|function) (\w+)", declarations, flags=re.MULTILINE
    )
    assert sorted(set(declared)) == sorted(exported)


def test_an_unknown_file_name_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match=r"wsgisse\.js"):
        wsgisse.client_source("../setup.cfg")


@pytest.mark.parametrize("name", sorted(CLIENT_FILES))
def test_each_file_is_served_with_its_type_an_etag_and_revalidation(name: str) -> None:
    app = wsgisse.ClientFiles()
    response = call(app, f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == CLIENT_FILES[name]
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.data == wsgisse.client_source(name)
    etag = response.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    again = call(app, f"/static/{name}", If_None_Match=f'"other", {etag}')
    assert (again.status_code, again.data, again.headers["ETag"]) == (304, b"", etag)
    head = call(app, f"/static/{name}", method="HEAD")
    assert (head.status_code, head.data) == (200, b"")
    assert head.headers["Content-Length"] == str(len(response.data))


def test_other_names_and_methods_are_refused() -> None:
    app = wsgisse.ClientFiles()
    assert call(app, "/static/other.js").status_code == 404
    refused = call(app, "/static/wsgisse.js", method="POST")
    assert (refused.status_code, refused.headers["Allow"]) == (405, "GET, HEAD")


def _site(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"site\n"]


def test_the_middleware_serves_the_client_next_to_its_stream_and_nothing_else() -> None:
    app = wsgisse.SSEMiddleware(_site, wsgisse.Channel(), path="/events")
    served = call(app, "/events/wsgisse.js")
    assert served.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert served.data == wsgisse.client_source()
    assert call(app, "/other/wsgisse.js").data == b"site\n"
    assert call(app, "/events/other.js").data == b"site\n"


def test_a_mounted_endpoint_serves_the_client_below_its_url() -> None:
    endpoint = wsgisse.SSEApp(wsgisse.Channel())
    served = call(endpoint, "/wsgisse.global.js")
    assert served.data == wsgisse.client_source("wsgisse.global.js")


def test_the_flask_extension_serves_the_client_next_to_its_route() -> None:
    from flask import url_for  # noqa: PLC0415 - the integration test imports Flask only here

    from wsgisse.integrations.flask import CLIENT_ENDPOINT, SSE  # noqa: PLC0415

    app = Flask("client")
    SSE(app)
    client = app.test_client()
    served = client.get("/events/wsgisse.js")
    assert served.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert served.data == wsgisse.client_source()
    cached = client.get("/events/wsgisse.js", headers={"If-None-Match": served.headers["ETag"]})
    assert cached.status_code == 304
    assert "Content-Type" not in cached.headers
    assert client.get("/events/other.js").status_code == 404
    with app.test_request_context():
        assert url_for(CLIENT_ENDPOINT, name="wsgisse.js") == "/events/wsgisse.js"


def test_the_bottle_plugin_serves_the_client_next_to_its_route() -> None:
    import bottle  # noqa: PLC0415

    from wsgisse.integrations.bottle import SSEPlugin  # noqa: PLC0415

    app = bottle.Bottle()
    app.install(SSEPlugin())
    served = call(app, "/events/wsgisse.d.ts")
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "application/typescript; charset=utf-8"
    assert served.data == wsgisse.client_source("wsgisse.d.ts")
    assert call(app, "/events/wsgisse.css").status_code == 404


@pytest.mark.slow
def test_the_wheel_carries_the_client(tmp_path: Path) -> None:
    # Built from a copy, so that the build leaves nothing in the checkout.
    root = Path(__file__).parent.parent
    source = tmp_path / "source"
    shutil.copytree(root / "wsgisse", source / "wsgisse", ignore=shutil.ignore_patterns("__py*"))
    for name in ("setup.cfg", "setup.py", "pyproject.toml", "README.rst", "LICENSE"):
        shutil.copy(root / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("wsgisse-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in CLIENT_FILES:
        assert f"wsgisse/static/{name}" in names
