#!/usr/bin/env bash
# Installs the collection openstackimage.cloud into the Ansible found on PATH, as
# adapters/terraform/install.sh does for Terraform:
#   adapters/ansible/install.sh [COLLECTIONS_PATH]
# COLLECTIONS_PATH: default the first entry of ANSIBLE_COLLECTIONS_PATH, else
# ~/.ansible/collections. The collection carries the component (OPENSTACK_IMAGE_WASM, else
# exported from target/release/openstack-image, built if missing) and the Python adapter; the
# Python that runs this Ansible gets wasmtime==48.0.0 (the adapter's runtime) if it lacks it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

command -v ansible-galaxy >/dev/null || { echo "$0: no ansible-galaxy on PATH (pip install ansible-core)" >&2; exit 2; }
# The interpreter Ansible runs modules on localhost with: the one `ansible --version` names.
python="$(ansible --version | sed -n 's/^ *python version = .*(\(\/[^)]*\))$/\1/p' | head -n1)"
[[ -x "$python" ]] || { echo "$0: cannot tell which Python runs Ansible (ansible --version)" >&2; exit 2; }
if ! "$python" -c 'import wasmtime, sys; sys.exit(wasmtime.__version__.split(".")[0] != "48")' 2>/dev/null; then
    "$python" -m pip install --quiet --disable-pip-version-check 'wasmtime==48.0.0' >&2
fi

dest="${1:-${ANSIBLE_COLLECTIONS_PATH%%:*}}"
dest="${dest:-$HOME/.ansible/collections}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/cloud/files"
cp -r "$here/galaxy.yml" "$here/README.md" "$here/meta" "$here/plugins" "$stage/cloud/"
cp "$repo/adapters/python/openstack_image_component.py" "$stage/cloud/plugins/module_utils/"
if [[ -n "${OPENSTACK_IMAGE_WASM:-}" ]]; then
    cp "$OPENSTACK_IMAGE_WASM" "$stage/cloud/files/openstack-image.wasm"
else
    binary="${CARGO_TARGET_DIR:-$repo/target}/release/openstack-image"
    [[ -x "$binary" ]] || (cd "$repo" && cargo build --release -p openstack-image >&2)
    "$binary" component export "$stage/cloud/files/openstack-image.wasm" >&2
fi
installed="$dest/ansible_collections/openstackimage/cloud"
printf '# Written by install.sh: where it installed the component.\nCOMPONENT = %s\n' \
    "\"$installed/files/openstack-image.wasm\"" > "$stage/cloud/plugins/module_utils/_installed.py"

ansible-galaxy collection build "$stage/cloud" --output-path "$stage" >&2
ansible-galaxy collection install "$stage"/openstackimage-cloud-*.tar.gz -p "$dest" --force >&2
echo "$installed"
