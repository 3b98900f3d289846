#!/usr/bin/env bash
# Installs missing system packages, then builds and runs the whole test suite (release mode).
# Uses cargo-nextest when it is installed, else `cargo test`. Exit code = the tests' result.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh || exit $?
# shellcheck source=scripts/cargo-env.sh
. scripts/cargo-env.sh

# The gateway and the bench tools first: the smoke runs below use this build.
echo "== cargo build --release (the gateway and the bench tools)"
cargo build --release --bins --examples || exit $?

# Style gates, formatting and lints, in the background while the smoke runs (which mostly
# wait on real-time media): clippy checks in its own target directory, so it neither waits
# on nor invalidates the release build. Its output is printed when it is done.
lint_log=$(mktemp)
(
  echo "== cargo fmt --check"
  cargo fmt --check
  fmt_status=$?
  echo "== cargo clippy --release -- -D warnings"
  cargo clippy --release --target-dir "${CARGO_TARGET_DIR:-target}/clippy" -- -D warnings
  clippy_status=$?
  [ "$fmt_status" -eq 0 ] && [ "$clippy_status" -eq 0 ]
) >"$lint_log" 2>&1 &
lint_pid=$!

# The bench draws its plots with matplotlib, which install-deps brings as Debian's
# python3-matplotlib: use Debian's python3 when another one (pyenv, say) comes first on PATH
# without it.
py=python3
if ! python3 -c 'import matplotlib' 2>/dev/null && /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  py=/usr/bin/python3
fi

# A quick smoke run of the benchmarks (seconds; asserts no figure), so a broken bench shows
# here. It comes first so the test runner's summary line stays last.
echo "== bench smoke: bench/run.py --quick"
"$py" bench/run.py --quick
bench_status=$?
# A churn soak of about 2 minutes: fails if the gateway dies or fds, GStreamer pipelines or
# tokio tasks stay above their idle counts once the load is gone (bench/soak.py).
echo "== soak smoke: bench/soak.py --quick"
"$py" bench/soak.py --quick || bench_status=$?
echo "== admission smoke: bench/admission.py --quick"
"$py" bench/admission.py --quick || bench_status=$?

wait "$lint_pid"
lint_status=$?
cat "$lint_log"
rm -f "$lint_log"
if [ "$lint_status" -ne 0 ]; then
  echo "formatting or lints failed (see above)"
  bench_status=$lint_status
fi

if cargo nextest --version >/dev/null 2>&1; then
  # nextest does not run doc tests; run them first so its summary line stays last.
  cargo test --release --doc
  doc_status=$?
  cargo nextest run --release --no-fail-fast
  status=$?
  if [ "$status" -eq 0 ] && [ "$doc_status" -ne 0 ]; then
    echo "doc tests failed (see above)"
    status=$doc_status
  fi
  if [ "$status" -eq 0 ] && [ "$bench_status" -ne 0 ]; then
    echo "bench smoke, formatting or lints failed (see above)"
    status=$bench_status
  fi
  exit "$status"
fi

cargo test --release --no-fail-fast
status=$?
if [ "$status" -eq 0 ] && [ "$bench_status" -ne 0 ]; then
  echo "bench smoke failed (see above)"
  status=$bench_status
fi
exit "$status"
