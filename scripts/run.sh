#!/usr/bin/env bash
# Installs missing system packages, then builds and runs the gateway with the repository's
# matrix.yaml and pipelines/. Extra arguments go to `interop-gateway serve` (e.g. --http 0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# shellcheck source=scripts/cargo-env.sh
. scripts/cargo-env.sh

exec cargo run --release -- serve --matrix matrix.yaml --pipelines pipelines "$@"
