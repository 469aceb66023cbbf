#!/usr/bin/env bash
# Builds terraform-provider-openstackimage and installs it where `terraform init` and
# `tofu init` find it offline: the implied local mirror directories
#   ~/.terraform.d/plugins/registry.terraform.io/openstack-image/openstackimage/VERSION/OS_ARCH/
#   ~/.terraform.d/plugins/registry.opentofu.org/openstack-image/openstackimage/VERSION/OS_ARCH/
# (Terraform's default registry host and OpenTofu's). PLUGINS_DIR=DIR installs below DIR
# instead of ~/.terraform.d/plugins (a `filesystem_mirror` of your own).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
version=$(awk -F'"' '/^\[workspace.package\]/ { p = 1 } p && /^version = / { print $2; exit }' Cargo.toml)
case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) echo "install.sh: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
cargo build --release --locked -p terraform-provider-openstackimage >&2
binary="${CARGO_TARGET_DIR:-$root/target}/release/terraform-provider-openstackimage"
install_into() {
    local dir="$1/openstack-image/openstackimage/$version/linux_$arch"
    mkdir -p "$dir"
    install -m 0755 "$binary" "$dir/terraform-provider-openstackimage_v$version"
    echo "installed $dir/terraform-provider-openstackimage_v$version"
}
plugins="${PLUGINS_DIR:-$HOME/.terraform.d/plugins}"
install_into "$plugins/registry.terraform.io"
install_into "$plugins/registry.opentofu.org"
