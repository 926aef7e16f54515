"""The release check's last step: the built wheel, alone in a fresh venv, streams an event.

Run by ``make package`` after ``python -m build`` and ``twine check``::

    python tests/package_smoke.py DIST_DIR WORK_DIR

It makes a virtual environment in WORK_DIR, installs the wheel from DIST_DIR with no
package index (so a dependency the core should not have fails the install), checks that
nothing but wsgisse joined what a fresh venv holds, then runs a smoke app from a directory
outside the checkout (so the installed package, not the work tree, is imported): a
threaded ``wsgiref`` server streams one published event to a plain HTTP client.

Before that it checks what PyPI would show: the wheel's metadata has the project URLs and
only the published extras (no dev or demo tooling), and the sdist carries the files the
README and the docs point to.

Exits non-zero, with the reason, on any failure; every wait is bounded.
"""

from __future__ import annotations

import email
import json
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

PROJECT_URLS = {"Documentation", "Source", "Changelog", "Issues"}
# Each published extra and a package it must install; dev and demo tooling is no extra
# (requirements/dev.txt, requirements/demo.txt).
EXTRAS = {
    "gevent": "gevent",
    "gunicorn": "gunicorn",
    "flask": "flask",
    "bottle": "bottle",
    "redis": "redis",
}
# What the README and the docs send a reader of the sdist to.
SDIST_FILES = [
    "README.rst",
    "CHANGES.rst",
    "LICENSE",
    "Makefile",
    "benchmarks/README.rst",
    "benchmarks/results/full-run.json",
    "benchmarks/loadgen/loadgen.c",
    "deploy/nginx/wsgisse.conf",
    "docs/conf.py",
    "docs/index.rst",
    "examples/demo.py",
    "requirements/dev.txt",
    "requirements/demo.txt",
    "requirements/docs.txt",
    ".readthedocs.yaml",
    "tests/conftest.py",
]

# The smoke app, run by the fresh venv's interpreter in isolated mode (-I: no user site,
# no PYTHONPATH, no current directory on the path).
SMOKE_APP = r"""
import http.client
import json
import socketserver
import sys
import threading
from importlib import metadata
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import wsgisse

class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True

class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass

channel = wsgisse.Channel()
endpoint = wsgisse.SSEMiddleware(lambda e, s: [], channel, path="/events")

def app(environ, start_response):
    # wsgiref's handler reports wsgi.multithread False even under ThreadingMixIn; this
    # server does run each request in its own thread.
    environ["wsgi.multithread"] = True
    return endpoint(environ, start_response)

server = make_server("127.0.0.1", 0, app, ThreadingServer, QuietHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
connection.request("GET", "/events", headers={"Accept": "text/event-stream"})
response = connection.getresponse()
assert response.status == 200, response.status
assert response.getheader("Content-Type").startswith("text/event-stream")
parser = wsgisse.EventStreamParser()
parser.feed(response.fp.readline())  # the preamble leaves at once: subscribed
published = channel.publish({"smoke": True}, event="smoke")
received = []
while not received:
    line = response.fp.readline()
    assert line, "the stream ended before the event"
    received = [item for item in parser.feed(line) if isinstance(item, wsgisse.MessageEvent)]
event = received[0]
assert (event.type, json.loads(event.data), event.last_event_id) == (
    "smoke", {"smoke": True}, published.id), event
connection.close()
wsgisse.shutdown()
server.shutdown()
print(json.dumps({
    "wsgisse": wsgisse.__version__,
    "file": wsgisse.__file__,
    "distributions": sorted(d.metadata["Name"].lower() for d in metadata.distributions()),
}))
"""


def main(dist_dir: Path, work_dir: Path) -> int:
    wheels = sorted(dist_dir.glob("wsgisse-*.whl"))
    if len(wheels) != 1:
        print(f"expected one wsgisse wheel in {dist_dir}, found {wheels}", file=sys.stderr)
        return 1
    problems = [*_metadata_problems(wheels[0]), *_sdist_problems(dist_dir)]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    work_dir = work_dir.resolve()
    env_dir = work_dir / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    before = _distributions(python, work_dir)
    subprocess.run(
        [python, "-m", "pip", "install", "--no-index", "--no-input", "--quiet",
         "--disable-pip-version-check", str(wheels[0].resolve())],
        check=True, timeout=300, cwd=work_dir,
    )  # fmt: skip
    smoke = subprocess.run(
        [python, "-I", "-c", SMOKE_APP],
        check=True, timeout=60, cwd=work_dir, capture_output=True, text=True,
    )  # fmt: skip
    report = json.loads(smoke.stdout)
    added = set(report["distributions"]) - before
    if added != {"wsgisse"}:
        print(f"installing the wheel added {sorted(added)}, not only wsgisse", file=sys.stderr)
        return 1
    if not Path(report["file"]).resolve().is_relative_to(env_dir.resolve()):
        print(f"the smoke app imported {report['file']}, not the wheel", file=sys.stderr)
        return 1
    print(f"wheel smoke test: wsgisse {report['wsgisse']} alone in a fresh venv streamed an event")
    return 0


LIST_DISTRIBUTIONS = (
    "from importlib import metadata; import json; "
    "print(json.dumps([d.metadata['Name'].lower() for d in metadata.distributions()]))"
)


def _metadata_problems(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(name))
    problems = []
    urls = {entry.split(",", 1)[0] for entry in metadata.get_all("Project-URL", [])}
    if urls != PROJECT_URLS:
        problems.append(f"project URLs {sorted(urls)}, expected {sorted(PROJECT_URLS)}")
    extras = set(metadata.get_all("Provides-Extra", []))
    if extras != set(EXTRAS):
        problems.append(f"extras {sorted(extras)}, expected {sorted(EXTRAS)}")
    requires = metadata.get_all("Requires-Dist", [])
    if any("extra ==" not in requirement for requirement in requires):
        problems.append(f"the core requires something: {requires}")
    for extra, package in EXTRAS.items():
        if not any(r.startswith(package) and f'extra == "{extra}"' in r for r in requires):
            problems.append(f"the {extra} extra does not install {package}")
    return problems


def _sdist_problems(dist_dir: Path) -> list[str]:
    sdists = sorted(dist_dir.glob("wsgisse-*.tar.gz"))
    if len(sdists) != 1:
        return [f"expected one wsgisse sdist in {dist_dir}, found {sdists}"]
    with tarfile.open(sdists[0]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    return [f"the sdist lacks {path}" for path in SDIST_FILES if path not in names]


def _distributions(python: str, cwd: Path) -> set[str]:
    listed = subprocess.run(
        [python, "-I", "-c", LIST_DISTRIBUTIONS],
        check=True, timeout=60, cwd=cwd, capture_output=True, text=True,
    )  # fmt: skip
    return set(json.loads(listed.stdout))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    work = Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    sys.exit(main(Path(sys.argv[1]), work))
