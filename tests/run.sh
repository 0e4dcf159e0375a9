#!/usr/bin/env bash
# Set up (apt packages, .venv) and run the whole test suite. The README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q tests "$@"
