#!/usr/bin/env bash
# Installs ansible-core (PyPI) with wasmtime-py for the collection's end-to-end tests, into
# target/tools/ansible, and prints that venv's bin directory.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
echo "$("$root/scripts/tool-venv" ansible 'ansible-core>=2.15,<2.20' 'wasmtime==48.0.0')/bin"
