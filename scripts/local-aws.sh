#!/usr/bin/env bash
# Local AWS for `cargo lambda watch`: moto server on a free 127.0.0.1 port (scripts/with-moto.sh)
# with template.yaml's tables and queues, and the env file every function needs
# (scripts/local-aws.py writes it; default target/local-aws.env, LOCAL_AWS_ENV to change).
# Usage: scripts/local-aws.sh [command [args...]]
#   with a command: runs it with LOCAL_AWS_ENV and MOTO_ENDPOINT exported, then stops moto;
#   without: prints how to invoke the functions and keeps moto up until Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
if [ -z "${MOTO_ENDPOINT:-}" ]; then
  exec "$root/scripts/with-moto.sh" "$0" "$@"
fi

export LOCAL_AWS_ENV=${LOCAL_AWS_ENV:-$root/target/local-aws.env}
mkdir -p "$(dirname "$LOCAL_AWS_ENV")"
(cd "$root" && "$venv/bin/python" scripts/local-aws.py "$MOTO_ENDPOINT" "$LOCAL_AWS_ENV")
echo "tables and queues of template.yaml created on $MOTO_ENDPOINT; environment in $LOCAL_AWS_ENV" >&2

if [ $# -gt 0 ]; then
  "$@"
else
  cat >&2 <<TEXT
Now, in another shell (from $root):
  cargo lambda watch --env-file $LOCAL_AWS_ENV
and in a third:
  cargo lambda invoke connect --data-file events/connect.json
Ctrl-C stops moto.
TEXT
  while true; do sleep 3600; done
fi
