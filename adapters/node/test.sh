#!/usr/bin/env bash
# Installs the pinned packages, transpiles the component and runs the provider tests against
# the cloud named by the OS_* variables (DEV_CLOUD_VENV: the venv holding `openstack`).
#
#   adapters/node/test.sh [path/to/openstack-image.wasm]
#
# Default component: target/openstack-image.wasm of this repository
# (or $OPENSTACK_IMAGE_COMPONENT).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
component="${1:-${OPENSTACK_IMAGE_COMPONENT:-$here/../../target/openstack-image.wasm}}"
[[ "$component" = /* ]] || component="$PWD/$component"
cd "$here"

if [[ ! -f "$component" ]]; then
  echo "test.sh: component not found: $component" >&2
  echo "usage: adapters/node/test.sh <openstack-image.wasm>" >&2
  exit 2
fi
: "${OS_AUTH_URL:?set the OS_* variables of the cloud (e.g. eval \"\$(scripts/dev-cloud env)\")}"
if [[ -z "${OPENSTACK_CLI:-}" && -n "${DEV_CLOUD_VENV:-}" ]]; then
  export OPENSTACK_CLI="$DEV_CLOUD_VENV/bin/openstack"
fi

# npm ci unless node_modules was installed by this script from the same package-lock.json.
stamp=node_modules/.installed-lock.sha256
lock_sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_sum" ]]; then
  npm ci --no-audit --no-fund
  echo "$lock_sum" > "$stamp"
fi

npm run --silent build -- "$component"
npm run --silent typecheck   # the JS against the types generated from the WIT
exec node --test --test-concurrency=1 test/
