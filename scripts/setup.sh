#!/usr/bin/env bash
# Installs everything pressrun needs, idempotently: a Python virtualenv with the package and its
# dependencies, Chromium, and fonts covering Latin, CJK, Arabic/Hebrew and colour emoji.
# Safe to run again: each step checks first and does nothing when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.setup-stamp

log() { printf 'setup: %s\n' "$*" >&2; }

# --- Python -----------------------------------------------------------------------------------
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  log "pressrun needs Python 3.11 or newer; set PYTHON=/path/to/python3.11"; exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  log "installing Python dependencies"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e '.[dev]'
  touch "$STAMP"
fi

# --- System packages: Chromium and fonts --------------------------------------------------------
have_chromium() {
  if [ -n "${PRESSRUN_CHROMIUM_PATH:-}" ]; then [ -x "$PRESSRUN_CHROMIUM_PATH" ]; return; fi
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || command -v google-chrome >/dev/null 2>&1
}
have_font() { fc-list 2>/dev/null | grep -i "$1" >/dev/null; }  # no -q: SIGPIPE + pipefail
have_library() { { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | grep -F "$1" >/dev/null; }

apt_packages=()
have_chromium || apt_packages+=(chromium)
# The headless shell is what pressrun renders with when present (faster captures); on Debian it is
# its own package, built from the same Chromium source as `chromium`.
if [ -z "${PRESSRUN_CHROMIUM_PATH:-}" ] && ! command -v chromium-headless-shell >/dev/null 2>&1 \
   && command -v apt-cache >/dev/null 2>&1 && apt-cache show chromium-headless-shell >/dev/null 2>&1; then
  apt_packages+=(chromium-headless-shell)
fi
command -v fc-list >/dev/null 2>&1 || apt_packages+=(fontconfig)
have_font "Noto Sans CJK" || apt_packages+=(fonts-noto-cjk)
have_font "Noto Color Emoji" || apt_packages+=(fonts-noto-color-emoji)
{ have_font "Noto Sans Arabic" && have_font "Noto Sans Hebrew"; } || apt_packages+=(fonts-noto-core)
# libseccomp: template processes deny themselves sockets, programs and root's system calls with it.
have_library libseccomp.so.2 || apt_packages+=(libseccomp2)

if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing system packages: ${apt_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${apt_packages[@]}" >/dev/null
    command -v fc-cache >/dev/null 2>&1 && fc-cache -f >/dev/null 2>&1 || true
  elif [ "${apt_packages[*]}" = "chromium-headless-shell" ]; then
    log "optional: install chromium-headless-shell for faster renders (not root: skipped)"
  elif ! have_chromium; then
    log "no system Chromium and not root with apt-get: installing Playwright's own Chromium"
    "$VENV/bin/python" -m playwright install chromium
    log "fonts: install Noto (CJK, Arabic, Hebrew) and Noto Color Emoji with your package manager"
  else
    log "missing system packages (${apt_packages[*]}); install them with your package manager"
  fi
fi
log "ready"
