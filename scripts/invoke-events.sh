#!/usr/bin/env bash
# docs/testing.md's "Invoke events locally", as a test: every file in events/ through its function with
# `cargo lambda watch` and `cargo lambda invoke`, verbatim, against moto on a free loopback
# port with template.yaml's tables and queues (scripts/local-aws.sh), each answer checked.
# Bounded: the build, the watcher's start and every invocation have timeouts; the watcher and
# moto are stopped whatever happens. Usage: scripts/invoke-events.sh   (part of `make test`)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
export PATH="$venv/bin:$PATH"
if [ -z "${LOCAL_AWS_ENV:-}" ]; then
  # Every sink and hook on, so every AWS call a deployed stack makes is made (local-aws.py),
  # and the Management API a stand-in that answers 410 and 429 for some connections.
  export LOCAL_AWS_SINKS=1
  port_file=$(mktemp -t fake-management-api.XXXXXX)
  "$venv/bin/python" "$root/scripts/fake-management-api.py" "$port_file" &
  fake_pid=$!
  trap 'kill "$fake_pid" 2>/dev/null || true; rm -f "$port_file"' EXIT
  for _ in $(seq 1 100); do [ -s "$port_file" ] && break; sleep 0.1; done
  export LOCAL_AWS_WEBSOCKET_ENDPOINT="http://127.0.0.1:$(cat "$port_file")/prod"
  "$root/scripts/local-aws.sh" "$0" "$@"
  exit $?
fi
cd "$root"

# event file | function | what the answer (as compact JSON) must contain. In this order:
# connect first (the fixture connection then exists for the routes and sends), disconnect
# last. notify-connection.json's third record is malformed on purpose: it alone fails.
expectations=$(cat <<'TABLE'
connect.json|connect|"statusCode":200
connect-no-token.json|connect|"statusCode":401
ping.json|ping|{\"type\":\"pong\",\"name\":\"Stepan\"}
default-garbage.json|default|\"code\":\"bad_request\"
default-unknown-action.json|default|\"code\":\"unknown_action\"
subscribe.json|actions|\"ok\":true
publish.json|actions|\"code\":\"forbidden\"
presence.json|actions|\"type\":\"presence\"
http-get-group.json|api|"statusCode":200
http-send.json|api|"statusCode":202
http-notify.json|api|"statusCode":202
commands.json|commands|"batchItemFailures":[]
notify-user.json|notify-user|"batchItemFailures":[]
notify-connection.json|notify-connection|"batchItemFailures":[{"itemIdentifier":"0a7c9e4e-6b1f-4c8a-9d2e-000000000002"}]
deliver.json|deliver|"batchItemFailures":[]
upstream.json|upstream|"batchItemFailures":[{"itemIdentifier":"0a7c9e4e-6b1f-4c8a-9d2e-0000000000u1"}]
disconnect.json|disconnect|"statusCode":200
TABLE
)

# Every fixture has an expectation, and every expectation a fixture.
listed=$(cut -d'|' -f1 <<<"$expectations" | sort)
present=$(cd events && ls -1 -- *.json | sort)
if [ "$listed" != "$present" ]; then
  echo "invoke-events: events/ and the expectations differ:" >&2
  diff <(echo "$present") <(echo "$listed") >&2 || true
  exit 1
fi

functions=$(cut -d'|' -f2 <<<"$expectations" | sort -u)
echo "building $(wc -w <<<"$functions") functions" >&2
# As `cargo lambda watch` builds them (`cargo run --bin NAME` at the workspace root, so the
# same features), ahead of the first invocation and its timeout.
# shellcheck disable=SC2046
timeout 1500 cargo build --locked --quiet $(printf -- '--bin %s ' $functions)

# Every AWS call each function makes, for the IAM check (scripts/iam-check.py, `make iam`).
calls=${AWS_CALL_LOG:-$root/target/aws-calls/invoke-events.jsonl}
mkdir -p "$(dirname "$calls")"
: >"$calls"
export SWITCHBOARD_AWS_CALL_LOG=$calls

port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp -t cargo-lambda-watch.XXXXXX.log)
setsid cargo lambda watch --env-file "$LOCAL_AWS_ENV" --ignore-changes \
  --invoke-address 127.0.0.1 --invoke-port "$port" >"$log" 2>&1 &
watch_pid=$!
stop_watch() {
  kill -- -"$watch_pid" 2>/dev/null || true
  wait "$watch_pid" 2>/dev/null || true
}
trap 'stop_watch; rm -f "$log"' EXIT
trap 'exit 143' TERM INT

for _ in $(seq 1 300); do
  if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 "$watch_pid" 2>/dev/null; then cat "$log" >&2; echo "cargo lambda watch exited" >&2; exit 1; fi
  sleep 0.2
done

# Then the IAM check's scenarios (scripts/iam-scenarios.py): every path that calls AWS.
scenarios=$root/target/aws-calls/scenarios
"$venv/bin/python" scripts/iam-scenarios.py "$scenarios" >"$scenarios.table"
expectations="$(sed 's|^|events/|' <<<"$expectations")
$(sed "s|^|$scenarios/|" "$scenarios.table")"

passed=0 failed=0
while IFS='|' read -r event function expected; do
  started=${EPOCHREALTIME/./}
  if answer=$(timeout 60 cargo lambda invoke "$function" --data-file "$event" \
      --invoke-address 127.0.0.1 --invoke-port "$port" --output-format json 2>&1); then
    status=ok
    # cargo lambda prints the answer pretty; compare its compact form.
    answer=$("$venv/bin/python" -c 'import json, sys; print(json.dumps(json.load(sys.stdin), separators=(",", ":")))' <<<"$answer" 2>/dev/null || echo "$answer")
  else
    status="failed (exit $?)"
  fi
  ms=$(( (${EPOCHREALTIME/./} - started) / 1000 ))
  took="$((ms / 1000)).$((ms % 1000 / 100))"
  if [ "$status" = ok ] && [[ "$answer" == *"$expected"* ]]; then
    passed=$((passed + 1))
    printf 'ok    %-40s %-18s %5s s\n' "${event#"$root"/target/aws-calls/}" "$function" "$took"
  else
    failed=$((failed + 1))
    printf 'FAIL  %-40s %-18s %5s s  %s; expected %s in:\n%s\n' "$event" "$function" "$took" "$status" "$expected" "$answer"
  fi
done <<<"$expectations"

if [ "$failed" -gt 0 ]; then
  echo "--- cargo lambda watch log (last 60 lines)" >&2
  tail -n 60 "$log" >&2
fi
echo "invoke-events: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
