#!/usr/bin/env bash
# Installs everything orch needs on a fresh Debian machine: the adb server, Chromium (for the
# dashboard's browser tests), a C compiler (the simulated NNAPI library), qemu-user, debootstrap
# and an aarch64 cross compiler (the arm64 virtual phone), PostgreSQL (the store tests' second
# database) and iproute2 (network namespaces), and orch itself.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v adb >/dev/null 2>&1 || need_apt+=(adb)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
[ -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || need_apt+=(qemu-user-static)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test,ssh,postgres]"
# The phones' TFLite runtime (tflite-runtime 2.20) and the oldest supported one, each in a
# cached environment (orchestrator/runtimes.py); their tests skip, saying why, without it.
python3 -m orchestrator.runtimes tflite-runtime-2.20 tflite-runtime-2.14 >/dev/null \
  || echo "setup: the tflite-runtime environments could not be built; their tests will skip" >&2
