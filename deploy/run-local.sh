#!/usr/bin/env bash
# Serve wsgisse's examples (examples/demo.py) through nginx or Caddy on this machine, over
# HTTP/2 and TLS, configured by the recipes next to this script:
#
#   deploy/run-local.sh nginx        # or: deploy/run-local.sh caddy
#
# It makes a self-signed certificate, starts gunicorn with gevent workers on
# 127.0.0.1:$APP_PORT (8000) and the proxy on 127.0.0.1:$PORT (8443), prints the URLs and
# runs until Ctrl-C, which stops both. Everything it writes (certificate, configuration,
# logs) is in a temporary folder, removed on exit. $PYTHON is the interpreter that runs
# gunicorn (default: the repository's .venv, else python3); it needs what
# `pip install -r requirements/dev.txt` (`make dev`) installs.
#
# Open both URLs in a browser and open an example in seven tabs: over HTTP/1.1 the
# seventh tab waits (six connections per origin); through the proxy, over HTTP/2, it
# does not. docs/deployment.rst explains.
set -euo pipefail

usage() {
    echo "usage: $0 nginx|caddy" >&2
    exit 2
}
[ $# -eq 1 ] || usage
proxy=$1
case "$proxy" in
    nginx | caddy) ;;
    *) usage ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
host=127.0.0.1
port=${PORT:-8443}
app_port=${APP_PORT:-8000}
python=${PYTHON:-}
if [ -z "$python" ]; then
    if [ -x "$root/.venv/bin/python" ]; then python=$root/.venv/bin/python; else python=python3; fi
fi

program() {
    # nginx is in /usr/sbin, which a non-root PATH may lack.
    command -v "$1" 2>/dev/null && return
    [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1" && return
    echo "error: $1 is not installed (apt-get install $1)" >&2
    exit 1
}
openssl=$(program openssl)
proxy_program=$(program "$proxy")

work=$(mktemp -d "${TMPDIR:-/tmp}/wsgisse-run-local.XXXXXX")
# nginx started as root runs its workers as nobody, who must reach their temporary files.
chmod 755 "$work"
pids=()
# shellcheck disable=SC2317  # run by the traps below
stop() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
    echo "stopped"
}
trap stop EXIT
trap 'exit 0' INT TERM

# Fills in the {{PLACEHOLDERS}} of a recipe: render TEMPLATE OUTPUT NAME=VALUE...
render() {
    local template=$1 output=$2 expression=()
    shift 2
    for pair in "$@"; do expression+=(-e "s|{{${pair%%=*}}}|${pair#*=}|g"); done
    sed "${expression[@]}" "$template" >"$output"
    if grep -q '{{[A-Z_]*}}' "$output"; then
        echo "error: $template has a placeholder this script does not fill" >&2
        exit 1
    fi
}

# Waits up to 20 s for something to listen on a port of 127.0.0.1.
wait_for_port() {
    local deadline=$((SECONDS + 20))
    until (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "error: nothing listens on $host:$1 after 20 s; logs in $work:" >&2
            tail -n 20 "$work"/*.log >&2 || true
            exit 1
        fi
        sleep 0.1
    done
}

"$openssl" req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
    -subj "/CN=$host" -addext "subjectAltName=IP:$host,DNS:localhost" \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

# gunicorn 25.1+ opens a control socket at a fixed path; this run does not need it.
control=()
if "$python" -m gunicorn --help 2>/dev/null | grep -q -- --no-control-socket; then
    control=(--no-control-socket)
fi
# Every request reaches gunicorn from the proxy, 127.0.0.1: an app with per-client caps
# would say trusted_proxies="127.0.0.1" (the examples have none).
# --keep-alive: longer than the proxy keeps idle upstream connections (nginx 60 s,
# Caddy 2 min), so that gunicorn never closes one the proxy is about to reuse.
"$python" -m gunicorn --worker-class gevent --workers 1 --worker-connections 1000 \
    --graceful-timeout 3 --keep-alive 150 --bind "$host:$app_port" "${control[@]}" \
    --chdir "$root/examples" 'demo:create_app()' &
pids+=($!)

if [ "$proxy" = nginx ]; then
    mkdir -m 755 "$work/nginx" "$work/nginx/conf" "$work/nginx/logs" "$work/nginx/temp"
    render "$here/nginx/nginx.conf" "$work/nginx/conf/nginx.conf" "PREFIX=$work/nginx"
    render "$here/nginx/wsgisse.conf" "$work/nginx/conf/wsgisse.conf" \
        "UPSTREAM=$host:$app_port" "LISTEN=$host:$port" "SERVER_NAME=$host" \
        "CERTIFICATE=$work/cert.pem" "CERTIFICATE_KEY=$work/key.pem"
    ln -s "$work/nginx/logs/error.log" "$work/nginx.log"
    "$proxy_program" -p "$work/nginx" -c conf/nginx.conf &
else
    mkdir "$work/caddy"
    render "$here/caddy/Caddyfile" "$work/caddy/Caddyfile" \
        "SITE=https://$host:$port" "UPSTREAM=$host:$app_port" \
        "CERTIFICATE=$work/cert.pem" "CERTIFICATE_KEY=$work/key.pem"
    # Caddy's home, configuration and data are this run's own.
    HOME="$work/caddy" XDG_CONFIG_HOME="$work/caddy/config" XDG_DATA_HOME="$work/caddy/data" \
        "$proxy_program" run --config "$work/caddy/Caddyfile" --adapter caddyfile \
        2>"$work/caddy.log" &
fi
pids+=($!)

wait_for_port "$app_port"
wait_for_port "$port"
cat <<EOF

  wsgisse examples through $proxy, HTTP/2: https://$host:$port/
      (a self-signed certificate: accept the browser's warning once)
  the same, straight from gunicorn, HTTP/1.1: http://$host:$app_port/

  Ctrl-C stops both.

EOF

# Until Ctrl-C, or until one of them exits by itself (an error: say so).
set +e
wait -n "${pids[@]}"
status=$?
echo "error: gunicorn or $proxy exited (status $status); logs:" >&2
tail -n 20 "$work"/*.log >&2 2>/dev/null
exit 1
