#!/usr/bin/env bash
# Runs the Python adapter's end-to-end test against the cloud in the OS_* variables.
#   adapters/python/test.sh target/openstack-image.wasm
# Env: PYTHON_ADAPTER_VENV (default: <repo>/target/python-adapter-venv), PYTHON (default: python3),
#      DEV_CLOUD_VENV (venv holding the `openstack` observer CLI), OS_* (the cloud).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ $# -ne 1 ]]; then
    echo "usage: $0 <component.wasm>" >&2
    exit 2
fi
wasm="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
if [[ ! -f "$wasm" ]]; then
    echo "$0: no component at $1" >&2
    exit 2
fi
if [[ -z "${OS_AUTH_URL:-}" ]]; then
    echo "$0: OS_* variables are not set; run: eval \"\$(scripts/dev-cloud env)\"" >&2
    exit 2
fi

venv="${PYTHON_ADAPTER_VENV:-$repo/target/python-adapter-venv}"
if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"

cd "$here"
export PYTHONDONTWRITEBYTECODE=1
OPENSTACK_IMAGE_WASM="$wasm" exec "$venv/bin/python" -m unittest -v test_adapter
