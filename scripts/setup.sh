#!/usr/bin/env bash
# Install whatever is missing for ballotbox on a Debian / Raspberry Pi OS machine: system packages
# (libzbar0 for pyzbar, a TrueType font with Latin č ć đ š ž and Cyrillic glyphs, the PostgreSQL server,
# tpm2-tools to seal the device key to a TPM and swtpm, the software TPM its tests run against), the virtual
# environment in .venv and the Python packages. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
ldconfig -p 2>/dev/null | grep -q 'libzbar\.so\.0' || need_apt+=(libzbar0)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# the PostgreSQL server the receiver's tests and load test start for themselves (initdb + pg_ctl)
command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
# the device key sealed to a TPM 2.0 (firmware/trust/tpm.py) and the software TPM of tests/test_trust_tpm.py
command -v tpm2_createprimary >/dev/null 2>&1 || need_apt+=(tpm2-tools)
command -v swtpm >/dev/null 2>&1 || need_apt+=(swtpm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "setup: ballotbox needs Python 3.11 or newer; $("$PY" --version 2>&1) found. Install python3.11 (Bookworm ships it)." >&2
  exit 1
fi

# On a Pi the venv sees the apt-installed picamera2 (python3-picamera2 is not on PyPI in a usable form).
venv_args=()
if [ -f /proc/device-tree/model ] && grep -qi raspberry /proc/device-tree/model 2>/dev/null; then
  venv_args+=(--system-site-packages)
fi
[ -x .venv/bin/python ] || "$PY" -m venv "${venv_args[@]}" .venv

stamp=.venv/.ballotbox-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  extras="dev,receiver"
  if [ ${#venv_args[@]} -gt 0 ]; then extras="dev,receiver,pi"; fi
  .venv/bin/python -m pip install -q -e ".[${extras}]"
  touch "$stamp"
fi
