#!/usr/bin/env bash
# Builds approval.wasm, a WebAssembly component, from approval.js with the Bytecode Alliance's
# JavaScript toolchain from npm (ComponentizeJS: the SpiderMonkey engine as StarlingMonkey,
# with the module pre-initialised by Wizer), against the platform's WIT, world `approval`.
# Versions are pinned by package-lock.json. Needs node >= 20 and npm.
#
# It does nothing when approval.wasm is newer than its inputs; FORCE=1 rebuilds anyway.
set -euo pipefail
cd "$(dirname "$0")"

wit=../../wit/platform/0.1.0
out=approval.wasm

# Dependencies, at the versions package-lock.json pins, when node_modules is missing or older
# than package.json or the lockfile. Not `npm ci`: see "Versions, and why not npm ci" in
# README.md.
deps=node_modules/.package-lock.json
if [ ! -f "$deps" ] || [ package.json -nt "$deps" ] || [ package-lock.json -nt "$deps" ]; then
  npm install --no-save --no-audit --no-fund
fi

stale=${FORCE:-0}
if [ ! -f "$out" ]; then
  stale=1
else
  for input in approval.js package-lock.json build.sh "$wit"/*.wit; do
    if [ "$input" -nt "$out" ]; then stale=1; fi
  done
fi
if [ "$stale" = 0 ]; then
  echo "$out is up to date"
  exit 0
fi

# The toolchain's default settings: the engine's optional WASI features (stdio, random,
# clocks, http) are linked by the host, which grants them nothing beyond what HQ allowed
# this plugin (wasi:http goes through the same allowlist and credentials as `outbound`).
npx --no-install jco componentize approval.js \
  --wit "$wit" \
  --world-name approval \
  --out "$out.tmp"
mv "$out.tmp" "$out"

echo "built $out: $(wc -c <"$out") bytes; it imports and exports:"
npx --no-install jco wit "$out"
