#!/usr/bin/env bash
# Installs what interop-gateway needs to build, run and test on Debian 12 (bookworm).
# Run as root. Packages already installed are skipped; when nothing is missing, apt is not touched.
set -euo pipefail

packages=(
  pkg-config build-essential clang libclang-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice gstreamer1.0-tools
  libnice-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev
  ffmpeg nginx libnginx-mod-rtmp ca-certificates curl
  redis-server
  chromium
  python3-matplotlib
  python3-venv
)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then
    missing+=("$pkg")
  fi
done

# Node and npm install JSMpeg for the H5 player page (below). Any installed npm will do (it
# may come from elsewhere than Debian); only when there is none are Debian's (node 18) added.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} system packages present, skipping apt"
else
  echo "install-deps: missing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (sudo $0) to install them" >&2
    exit 1
  fi

  # Keep package scripts from starting services (nginx would take port 80); the tests start
  # their own nginx. Only install our policy file when the machine has none.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  cleanup() { if [ "$own_policy" -eq 1 ]; then rm -f "$policy"; fi; }
  trap cleanup EXIT

  nginx_was_missing=0
  for pkg in "${missing[@]}"; do
    if [ "$pkg" = nginx ]; then nginx_was_missing=1; fi
  done

  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"

  if [ "$nginx_was_missing" -eq 1 ]; then
    # The package enables its service for the next boot; the gateway's tests do not want it.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      systemctl disable --now nginx >/dev/null 2>&1 || true
    elif [ -s /run/nginx.pid ]; then
      kill "$(cat /run/nginx.pid)" 2>/dev/null || true
    fi
  fi
fi

# npm packages pinned in package.json / package-lock.json: JSMpeg (@cycjimmy/jsmpeg-player) and
# hls.js, served from node_modules/ for the H5 and HLS player pages; the console's toolchain and
# players (vite, TypeScript, mpegts.js) and puppeteer-core, with which the tests drive the system
# Chromium (it downloads no browser). `npm ci` runs when any of them is missing or another version.
repo_root="$(cd "$(dirname "$0")/.." && pwd)"
npm_stale=$(cd "$repo_root" && node -e '
  const fs = require("fs");
  const p = JSON.parse(fs.readFileSync("package.json", "utf8"));
  for (const [name, version] of Object.entries({ ...p.dependencies, ...p.devDependencies })) {
    try {
      if (JSON.parse(fs.readFileSync(`node_modules/${name}/package.json`, "utf8")).version !== version) console.log(name);
    } catch { console.log(name); }
  }' 2>/dev/null || echo "(node failed)")
if [ -n "$npm_stale" ]; then
  echo "install-deps: npm ci (missing or other versions: $(echo $npm_stale))"
  (cd "$repo_root" && npm ci --no-audit --no-fund)
else
  echo "install-deps: node_modules up to date (player pages, console toolchain)"
fi

# The operator's console (GET /console): built from console/ into console/dist/, only when its
# sources or the lock file changed since the last build (a hash of them is kept in dist).
console_hash=$(cd "$repo_root" && find console -path console/dist -prune -o -type f -print | LC_ALL=C sort \
  | xargs sha256sum package-lock.json | sha256sum | cut -d' ' -f1)
if [ "$(cat "$repo_root/console/dist/.source-hash" 2>/dev/null)" != "$console_hash" ]; then
  echo "install-deps: building the console (npm run build)"
  (cd "$repo_root" && npm run build --silent)
  echo "$console_hash" >"$repo_root/console/dist/.source-hash"
else
  echo "install-deps: console/dist is up to date"
fi

# The OpenAPI 3.1 validator the tests run on the gateway's API description
# (tests/it/openapi.rs): openapi-spec-validator, pinned, in a venv of the checkout.
openapi_venv="$repo_root/.tools/openapi-venv"
openapi_validator_version=0.9.0
openapi_installed=$("$openapi_venv/bin/pip" show openapi-spec-validator 2>/dev/null || true)
if [ ! -x "$openapi_venv/bin/openapi-spec-validator" ] \
  || ! grep -qx "Version: $openapi_validator_version" <<<"$openapi_installed"; then
  echo "install-deps: pip install openapi-spec-validator==$openapi_validator_version into $openapi_venv"
  # Debian's python3 (python3-venv above), whatever else comes first on PATH.
  py=/usr/bin/python3
  [ -x "$py" ] || py=python3
  "$py" -m venv "$openapi_venv"
  "$openapi_venv/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==$openapi_validator_version"
else
  echo "install-deps: openapi-spec-validator $openapi_validator_version present in $openapi_venv"
fi

# Rust: the dependencies (gstreamer-rs 0.25, axum 0.8, ...) need a recent toolchain (1.85 or
# newer). Debian 12's own cargo/rustc packages are far older (rustc 1.63), so they are not
# installed here; rustup is the way to get one (https://rustup.rs).
# shellcheck source=scripts/cargo-env.sh
. "$(dirname "$0")/cargo-env.sh"
if [ "$cargo_found" -eq 1 ]; then
  echo "install-deps: $(cargo --version) at $(command -v cargo)"
  # The test command checks formatting and lints: rustup's rustfmt and clippy components.
  if ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
    rustup component add rustfmt clippy || echo "install-deps: rustup could not add rustfmt/clippy" >&2
  fi
else
  echo "install-deps: cargo not found. Install a Rust toolchain >= 1.85 with rustup" >&2
  echo "install-deps: (Debian 12's apt 'cargo'/'rustc' packages are rustc 1.63: too old)" >&2
  exit 1
fi
