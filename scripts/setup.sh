#!/usr/bin/env bash
# Install the system packages colop needs on a Debian machine, only those that are missing.
# Sourced or run by scripts/test.sh and scripts/quickstart.sh.
set -euo pipefail

need=()
for p in pkg-config libhdf5-dev libclang-dev libopenmpi-dev openmpi-bin fonts-dejavu-core python3-venv; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (https://rustup.rs) and run again" >&2
  exit 1
fi
