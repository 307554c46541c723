#!/usr/bin/env bash
# Runs the Playwright tests against the debug server binary on a free port
# with a fresh database. Playwright starts and stops the server itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export E2E_PORT="${E2E_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
# Every test registers its own account, all from 127.0.0.1.
export PULSEBOARD_REGISTER_MAX_PER_HOUR=10000
E2E_DATA_DIR="$(mktemp -d)"
export E2E_DATA_DIR
trap 'rm -rf "$E2E_DATA_DIR"' EXIT
cd end2end
npx playwright test "$@"
