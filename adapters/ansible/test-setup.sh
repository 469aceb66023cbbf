#!/usr/bin/env bash
# Installs ansible-core (PyPI) with wasmtime-py for the collection's end-to-end tests, into
# target/tools/ansible, and prints that venv's bin directory. Test binaries run concurrently:
# one installs while the others wait on the lock; the marker is written last.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${CARGO_TARGET_DIR:-$root/target}/tools/ansible"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ ! -e "$venv/.installed" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'ansible-core>=2.15,<2.20' 'wasmtime==48.0.0' >&2
    touch "$venv/.installed"
fi
echo "$venv/bin"
