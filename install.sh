#!/usr/bin/env bash
# Installs everything, then runs the main job end to end on the bundled example:
# init the python template, lock it, build every step in Nix's sandbox, verify.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/scripts/install-deps.sh"

demo="${REPROFLAKE_DEMO_DIR:-/tmp/reproflake-demo}"
rm -rf "$demo"
reproflake init --template python "$demo"
cd "$demo"
reproflake lock
reproflake build
reproflake verify
echo
echo "the example's report (built in Nix's sandbox):"
cat results/report/report.json
