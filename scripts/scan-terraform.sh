#!/usr/bin/env bash
# Static security scan of terraform/ with checkov.
#
# checkov pins versions that clash with the project's own dependencies, so it lives in
# its own virtual environment (.venv-scan/, created on first use; set SCAN_VENV to put it
# elsewhere). Only that install uses the network. The scan itself is offline:
# --skip-download and BC_SKIP_MAPPING keep checkov from fetching policy metadata,
# CKV_SKIP_PACKAGE_UPDATE_CHECK from asking PyPI for a newer checkov, and external
# modules are never downloaded.
#
# Findings are fixed, or suppressed beside the resource with
# `# checkov:skip=CKV_...: reason`; the script fails on any other finding.
#
# Usage: scripts/scan-terraform.sh [extra checkov arguments]
set -euo pipefail

CHECKOV_VERSION="3.3.30"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SCAN_VENV:-$root/.venv-scan}"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/checkov" ]] || ! "$venv/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

cd "$root"
export BC_SKIP_MAPPING=TRUE
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true
exec "$venv/bin/checkov" \
    --directory terraform \
    --framework terraform \
    --skip-download \
    --download-external-modules false \
    --quiet \
    --compact \
    "$@"
