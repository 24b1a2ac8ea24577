#!/usr/bin/env bash
# Runs a command with moto server on a free 127.0.0.1 port, exported as
# MOTO_ENDPOINT, and stops moto afterwards whatever the command's outcome.
# Usage: scripts/with-moto.sh <command> [args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}

port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp -t moto.XXXXXX.log)
# moto's threaded server applies a conditional UpdateItem in steps another
# request's thread can interleave with (DynamoDB applies it atomically): a long
# GIL switch interval keeps each request's handling in one piece, so concurrent
# conditional writes behave as on DynamoDB (threads still switch on socket I/O).
"$venv/bin/python" -c 'import sys; sys.setswitchinterval(5); sys.argv[0] = "moto_server"; from moto.server import main; sys.exit(main())' \
  -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; rm -f "$log"' EXIT
# A TERM or Ctrl-C also goes through the EXIT trap, so moto never outlives the script.
trap 'exit 143' TERM INT

# Wait up to 30 s for moto to answer.
for _ in $(seq 1 150); do
  if "$venv/bin/python" - "$port" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1)
PY
  if ! kill -0 "$moto_pid" 2>/dev/null; then cat "$log" >&2; echo "moto server exited" >&2; exit 1; fi
  sleep 0.2
done

export MOTO_ENDPOINT="http://127.0.0.1:$port"
# The SDK must never find real credentials or regions from the developer's machine.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN
echo "moto server on $MOTO_ENDPOINT" >&2
"$@"
