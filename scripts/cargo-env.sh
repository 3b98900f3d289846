# Sourced by the other scripts: puts a rustup-installed `cargo` on PATH when the shell (often
# `sudo`, whose PATH drops ~/.cargo/bin) cannot see one. Sets `cargo_found=1` when cargo is usable.
# shellcheck shell=bash
cargo_found=0
if command -v cargo >/dev/null 2>&1; then
  cargo_found=1
else
  for dir in "${CARGO_HOME:-${HOME:-/root}/.cargo}/bin" /root/.cargo/bin; do
    if [ -x "$dir/cargo" ]; then
      PATH="$dir:$PATH"
      cargo_found=1
      break
    fi
  done
fi
# Under sudo, fall back to the invoking user's rustup toolchain (read only; CARGO_HOME stays root's).
if [ "$cargo_found" -eq 0 ] && [ -n "${SUDO_USER:-}" ]; then
  sudo_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  if [ -n "$sudo_home" ] && [ -x "$sudo_home/.cargo/bin/cargo" ]; then
    PATH="$sudo_home/.cargo/bin:$PATH"
    export RUSTUP_HOME="${RUSTUP_HOME:-$sudo_home/.rustup}"
    cargo_found=1
  fi
fi
export PATH
