#!/usr/bin/env bash
# Runs the whole test suite: lint, type check, unit tests and real end-to-end builds.
# Installs what it needs first, so it works on a fresh Debian 12 machine as root.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
py=.venv/bin/python

$py -m ruff check .
$py -m ruff format --check reproflake
$py -m mypy
# The builders' scripts run under busybox's ash (which has ${var//x/y}: SC3060 off); their
# inputs are the derivation's attributes, set by Nix (SC2154 off).
shellcheck -s sh -e SC2154,SC3060 nix/*.sh
shellcheck -e SC2154 scripts/*.sh test.sh install.sh .ci/run

set +e
$py -m pytest -q -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure of the suite" >&2
  exit 1
fi
exit "$status"
