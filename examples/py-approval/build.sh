#!/usr/bin/env bash
# Builds approval.wasm, a WebAssembly component, from approval.py with the Bytecode Alliance's
# Python toolchain from PyPI (componentize-py: CPython compiled to wasm, the module
# pre-initialised at build time), against the platform's WIT, world `approval`, with the
# toolchain's default settings. The version is pinned in requirements.txt. Needs python3 with
# the venv module.
#
# It does nothing when approval.wasm is newer than its inputs; FORCE=1 rebuilds anyway.
set -euo pipefail
cd "$(dirname "$0")"

wit=../../wit/platform/0.1.0
out=approval.wasm
venv=.venv

# The toolchain, in a virtual environment of its own, when missing or older than
# requirements.txt.
if [ ! -x "$venv/bin/componentize-py" ] || [ requirements.txt -nt "$venv/bin/componentize-py" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
  touch "$venv/bin/componentize-py"
fi

stale=${FORCE:-0}
if [ ! -f "$out" ]; then
  stale=1
else
  for input in approval.py requirements.txt build.sh "$wit"/*.wit; do
    if [ "$input" -nt "$out" ]; then stale=1; fi
  done
fi
if [ "$stale" = 0 ]; then
  echo "$out is up to date"
  exit 0
fi

"$venv/bin/componentize-py" --wit-path "$wit" --world approval \
  componentize approval --output "$out.tmp"
mv "$out.tmp" "$out"
echo "built $out: $(wc -c <"$out") bytes"
