#!/usr/bin/env bash
# Everything `make bench`, `make bench-quick` and `make soak` need, installed when missing:
#   system packages  gcc, redis-server, nginx and libnginx-mod-nchan (apt-get, as root or
#                    through sudo; their services are kept from starting)
#   bench venv       benchmarks/.venv with the peers and py-spy (benchmarks/requirements.txt)
#   load generator   benchmarks/loadgen/build/{loadgen,blaster}, built with the system gcc
#
# Usage: bash benchmarks/setup.sh PYTHON VENV
set -euo pipefail
python=${1:-python3}
venv=${2:-benchmarks/.venv}
here=$(cd "$(dirname "$0")" && pwd)

missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] || missing+=(libnginx-mod-nchan)
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "error: ${missing[*]} missing, and installing needs root or sudo" >&2
        exit 1
    fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive bash -euo pipefail -c '
        policy=/usr/sbin/policy-rc.d
        if [ ! -e "$policy" ]; then
            trap "rm -f $policy" EXIT
            printf "#!/bin/sh\nexit 101\n" > "$policy"
            chmod 755 "$policy"
        fi
        # Wait (bounded) for another apt run to release its lock rather than fail.
        apt_options=(-o DPkg::Lock::Timeout=300)
        apt-get "${apt_options[@]}" update
        apt-get "${apt_options[@]}" install -y --no-install-recommends "$@"
    ' install-bench-deps "${missing[@]}"
fi

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
stamp=$venv/.bench-installed
if [ ! -e "$stamp" ] || [ "$here/requirements.txt" -nt "$stamp" ]; then
    "$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
        -r "$here/requirements.txt"
    touch "$stamp"
fi

build=$here/loadgen/build
mkdir -p "$build"
for prog in loadgen blaster; do
    if [ ! -x "$build/$prog" ] || [ "$here/loadgen/$prog.c" -nt "$build/$prog" ]; then
        gcc -O2 -Wall -Wextra -o "$build/$prog" "$here/loadgen/$prog.c"
    fi
done
echo "bench: ready ($venv, $build)"
