#!/usr/bin/env bash
# Lints template.yaml with cfn-lint and `sam validate --lint` (both offline).
# Usage: scripts/lint-template.sh [venv-bin-dir]   (default: .venv/bin)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/.venv/bin}
cd "$root"
export SAM_CLI_TELEMETRY=0
# sam validate reads a region and credentials before it lints; none are used.
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-lint} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-lint}
# I-level (informational) checks too: the template is kept free of every finding.
"$bin/cfn-lint" --include-checks I -- template.yaml
echo "cfn-lint: clean"
"$bin/sam" validate --lint --template template.yaml --region us-east-1
