#!/usr/bin/env python3
"""create -> read -> update -> delete one Glance image through the openstack-image component.

    eval "$(scripts/dev-cloud env)"          # or source any openrc: OS_AUTH_URL, OS_USERNAME, ...
    python example.py target/openstack-image.wasm /path/to/disk.raw

The cloud comes from the OS_* variables (or the clouds.yaml cloud OS_CLOUD names); the
component reads the image file through a read-only preopen of its directory and talks to
Keystone/Glance over wasi:http.
"""

import argparse
import json
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from openstack_image_component import ComponentError, ImageComponent  # noqa: E402


def show(step: str, doc: object) -> None:
    print(f"== {step}")
    print(json.dumps(doc, indent=2, sort_keys=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("component", help="path of openstack-image.wasm (exports openstack:image/resource)")
    parser.add_argument("image_file", help="image data to upload")
    parser.add_argument("--name", default=f"python-example-{uuid.uuid4().hex[:8]}", help="image name")
    parser.add_argument("--disk-format", default="raw")
    parser.add_argument("--container-format", default="bare")
    parser.add_argument("--keep", action="store_true", help="do not delete the image at the end")
    args = parser.parse_args()

    spec = {
        "name": args.name,
        "container_format": args.container_format,
        "disk_format": args.disk_format,
        "local_file_path": os.path.abspath(args.image_file),
        "properties": {"created_by": "adapters/python/example.py"},
        "tags": ["example"],
        "timeouts": {"create": 600},
    }

    started = time.monotonic()
    images = ImageComponent(args.component)
    print(f"compiled {args.component} in {time.monotonic() - started:.1f}s")
    state = None
    try:
        show("check", images.check(spec))

        state = images.create(spec)
        show(f"create ({state['id']})", state)

        read = images.read(state["id"], state)
        show("read", read)
        state = read or state

        spec = {**spec, "properties": {**spec["properties"], "stage": "updated"}, "tags": ["example", "updated"]}
        show("diff", images.diff(spec, state))
        state = images.update(state, spec)
        show("update", state)

        if not args.keep:
            show("delete", images.delete(state["id"]))
            print("read after delete:", images.read(state["id"]))
            state = None
        return 0
    except ComponentError as e:
        print(f"component error ({e.kind}): {e.message}", file=sys.stderr)
        for field in e.fields:
            print(f"  {field.get('field')}: {field.get('message')}", file=sys.stderr)
        return 1
    finally:
        if state is not None and not args.keep:
            try:
                images.delete(state["id"])
            except Exception as e:  # best effort cleanup
                print(f"cleanup of {state['id']} failed: {e}", file=sys.stderr)
        images.close()


if __name__ == "__main__":
    sys.exit(main())
