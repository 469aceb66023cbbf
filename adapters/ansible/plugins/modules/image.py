#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: image
short_description: Create, update or delete an OpenStack Glance image through the openstack-image component
version_added: "0.1.0"
description:
  - Keeps one Glance image as the task describes it, as C(openstack.cloud.image) does, with that
    module's parameter names. The work is done by the openstack-image WebAssembly component,
    run in a sandbox through wasmtime-py, which lets it reach only the cloud and the image's source.
  - The image is found by O(id), else by O(name). If there is none it is created and its data
    uploaded and verified (the digests Glance computes must match the bytes sent). If there is
    one, its metadata is updated in place; when O(filename)'s content differs from the image's
    data (sha512), a new image replaces it (the old one is deleted after the new one is active).
  - Check mode is the component's plan (nothing is sent to Glance); C(--diff) shows the fields
    that would change.
  - Parameters that differ from C(openstack.cloud.image) are O(wait) (always waits), and
    C(kernel), C(ramdisk), C(owner), C(volume) and C(allow_duplicates), which are not offered.
options:
  name:
    description: Image name in Glance; finds the image when O(id) is not given.
    type: str
  id:
    description: The image's id; a new image gets this id.
    type: str
  state:
    description: Whether the image should exist.
    type: str
    choices: [present, absent]
    default: present
  filename:
    description: Local image file to upload. Conflicts with O(image_source_url).
    type: path
  image_source_url:
    description: URL (http or https) to download the image data from.
    type: str
  image_source_username:
    description: Basic-auth user for O(image_source_url).
    type: str
  image_source_password:
    description: Basic-auth password for O(image_source_url); never returned.
    type: str
  image_cache_path:
    description:
      - Directory downloads are cached in, or C(none) to stream the download into Glance.
      - Default C(~/.cache/openstack-image/images) (or C($OPENSTACK_IMAGE_CACHE_DIR/images)).
    type: path
  decompress:
    description: Decompress the downloaded data (gzip, bzip2, xz, zstd) before upload.
    type: bool
  web_download:
    description: Let Glance download O(image_source_url) itself (web-download import).
    type: bool
  import_method:
    description: How the data reaches Glance.
    type: str
    choices: [direct, glance-direct, web-download, glance-download]
  use_import:
    description: C(openstack.cloud.image)'s switch for Glance's glance-direct import (O(import_method=glance-direct)).
    type: bool
  import_fallback:
    description: With web-download, C(upload) fetches and uploads the data here when Glance's import fails or stalls.
    type: str
    choices: [upload]
  source_region:
    description: glance-download, the region whose Glance holds the image to copy.
    type: str
  source_image_id:
    description: glance-download, the id of the image to copy.
    type: str
  container_format:
    description: Container format.
    type: str
    default: bare
  disk_format:
    description: Disk format; the data's own header must agree with it.
    type: str
    default: qcow2
  min_disk:
    description: Minimum disk size in GB needed to boot the image.
    type: int
  min_ram:
    description: Minimum RAM in MB needed to boot the image.
    type: int
  is_public:
    description: Make the image public (O(visibility=public)); O(visibility) wins when both are given.
    type: bool
    default: false
  visibility:
    description: Who can see the image.
    type: str
    choices: [public, private, shared, community]
  protected:
    description: Prevent the image from being deleted.
    type: bool
    aliases: [is_protected]
  hidden:
    description: Hide the image from the default image list.
    type: bool
  deactivated:
    description: Deactivate the image (Glance keeps it but serves no data); false reactivates it.
    type: bool
  properties:
    description: Properties the task manages; other properties of the image are left alone.
    type: dict
  tags:
    description: The image's tags, as a set.
    type: list
    elements: str
  members:
    description: Projects a shared image is offered to.
    type: list
    elements: str
  stores:
    description: Glance stores that must hold the data.
    type: list
    elements: str
  all_stores_must_succeed:
    description: With several stores, whether one failed store fails the import.
    type: bool
  region:
    description: Region whose Glance hosts the image (default O(region_name), the cloud's).
    type: str
  checksum:
    description: The image data's MD5; checked before the upload completes (C(source_checksum md5:...)).
    type: str
  source_checksum:
    description: Expected digest, C(sha256:<hex>), C(sha512:<hex>) or C(md5:<hex>).
    type: str
  verify_checksum:
    description: Verify Glance's digests against the bytes sent.
    type: bool
  timeout:
    description: Seconds a create (upload, import, verification) may take.
    type: int
    default: 1800
  wait:
    description: Accepted for C(openstack.cloud.image) playbooks; the component always waits for C(active).
    type: bool
    default: true
extends_documentation_fragment:
  - openstackimage.cloud.auth
author:
  - openstack-image developers
"""

EXAMPLES = r"""
- name: Upload a local qcow2 as a private image
  openstackimage.cloud.image:
    cloud: mycloud
    name: cirros
    container_format: bare
    disk_format: qcow2
    filename: /images/cirros-0.6.2-x86_64-disk.img
    properties:
      os_distro: cirros
    tags: [demo]

- name: Let Glance fetch it, uploading it ourselves when the import stalls
  openstackimage.cloud.image:
    name: ubuntu-24.04
    disk_format: qcow2
    image_source_url: https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img
    web_download: true
    import_fallback: upload

- name: Delete it
  openstackimage.cloud.image:
    name: cirros
    state: absent
"""

RETURN = r"""
id:
  description: The image's id.
  returned: success and O(state=present)
  type: str
image:
  description: The image as Glance holds it, with the spec as applied (C(openstack.cloud.image)'s names too).
  returned: success and O(state=present)
  type: dict
  contains:
    id:
      description: Image id.
      type: str
    name:
      description: Image name.
      type: str
    status:
      description: Image status.
      type: str
    checksum:
      description: MD5 of the data.
      type: str
    os_hash_value:
      description: sha512 of the data.
      type: str
    visibility:
      description: Who can see it.
      type: str
    properties:
      description: The properties the task manages.
      type: dict
    tags:
      description: Tags.
      type: list
      elements: str
replaced:
  description: The id of the image a content change replaced, when it did.
  returned: when an image was replaced
  type: str
"""

import hashlib
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.openstackimage.cloud.plugins.module_utils.openstackimage import (
    AUTH_ARGUMENT_SPEC,
    ComponentError,
    ansible_image,
    fail_with,
    leaves_url_to_glance,
    open_component,
)

# Parameters whose values go into the spec under the same name.
SAME_NAME = (
    "name", "image_source_url", "image_source_username", "image_source_password",
    "image_cache_path", "decompress", "web_download", "import_method", "import_fallback",
    "source_region", "source_image_id", "container_format", "disk_format", "visibility",
    "protected", "hidden", "deactivated", "properties", "tags", "members", "stores",
    "all_stores_must_succeed", "region", "source_checksum", "verify_checksum",
)


def argument_spec():
    spec = dict(
        name=dict(type="str"),
        id=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        filename=dict(type="path"),
        image_source_url=dict(type="str"),
        image_source_username=dict(type="str"),
        image_source_password=dict(type="str", no_log=True),
        image_cache_path=dict(type="path"),
        decompress=dict(type="bool"),
        web_download=dict(type="bool"),
        import_method=dict(type="str", choices=["direct", "glance-direct", "web-download", "glance-download"]),
        use_import=dict(type="bool"),
        import_fallback=dict(type="str", choices=["upload"]),
        source_region=dict(type="str"),
        source_image_id=dict(type="str"),
        container_format=dict(type="str", default="bare"),
        disk_format=dict(type="str", default="qcow2"),
        min_disk=dict(type="int"),
        min_ram=dict(type="int"),
        is_public=dict(type="bool", default=False),
        visibility=dict(type="str", choices=["public", "private", "shared", "community"]),
        protected=dict(type="bool", aliases=["is_protected"]),
        hidden=dict(type="bool"),
        deactivated=dict(type="bool"),
        properties=dict(type="dict"),
        tags=dict(type="list", elements="str"),
        members=dict(type="list", elements="str"),
        stores=dict(type="list", elements="str"),
        all_stores_must_succeed=dict(type="bool"),
        region=dict(type="str"),
        checksum=dict(type="str"),
        source_checksum=dict(type="str"),
        verify_checksum=dict(type="bool"),
        timeout=dict(type="int", default=1800),
        wait=dict(type="bool", default=True),
    )
    spec.update(AUTH_ARGUMENT_SPEC)
    return spec


def spec_of(params):
    """The component's spec document the task's parameters describe."""
    spec = {key: params[key] for key in SAME_NAME if params.get(key) is not None}
    if params.get("filename"):
        spec["local_file_path"] = os.path.abspath(params["filename"])
    if params.get("id"):
        spec["image_id"] = params["id"]
    if params.get("min_disk") is not None:
        spec["min_disk_gb"] = params["min_disk"]
    if params.get("min_ram") is not None:
        spec["min_ram_mb"] = params["min_ram"]
    if "visibility" not in spec:
        spec["visibility"] = "public" if params.get("is_public") else "private"
    if params.get("use_import") and "import_method" not in spec:
        spec["import_method"] = "glance-direct"
    if params.get("checksum") and "source_checksum" not in spec:
        spec["source_checksum"] = "md5:%s" % params["checksum"]
    if params.get("timeout"):
        spec["timeouts"] = {"create": params["timeout"]}
    cache = spec.get("image_cache_path")
    if cache and cache != "none":
        spec["image_cache_path"] = os.path.abspath(cache)
    elif spec.get("image_source_url") and cache is None and not leaves_url_to_glance(spec):
        # A download needs a cache directory; the openstack-image CLI's default serves here too.
        base = os.environ.get("OPENSTACK_IMAGE_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ.get("HOME") or "/", ".cache"),
            "openstack-image")
        spec["image_cache_path"] = os.path.join(os.path.abspath(base), "images")
    return spec


def sha512_of(path):
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def content_differs(spec, state):
    """True when the local file's bytes are not the image's (its sha512, as Glance computed it)."""
    path = spec.get("local_file_path")
    if not path or not os.path.isfile(path) or state.get("os_hash_algo") != "sha512":
        return False
    return bool(state.get("os_hash_value")) and sha512_of(path) != state["os_hash_value"]


def existing(module, component, spec):
    """The image the task describes: by id, else by name; None when there is none."""
    try:
        if spec.get("image_id"):
            return component.read(spec["image_id"])
        if spec.get("name"):
            query = {"name": spec["name"]}
            if spec.get("region"):
                query["region"] = spec["region"]
            return component.find(query)
    except ComponentError as err:
        if getattr(err, "kind", None) == "not-found":
            return None
        fail_with(module, err, spec.get("name"))
    module.fail_json(msg="give `name` or `id`: the image is found by one of them")


def before_after(state, spec, plan):
    """`--diff`: the fields the plan changes, as they are and as they would be."""
    before, after = {}, {}
    for change in plan.get("changes") or []:
        before[change["field"]] = change.get("old")
        after[change["field"]] = change.get("new")
    return {"before": before, "after": after}


def present(module, component, spec):
    try:
        spec = component.check(spec)
    except ComponentError as err:
        fail_with(module, err, spec.get("name"))
    state = existing(module, component, spec)
    if state is None:
        diff = {"before": {}, "after": {k: v for k, v in spec.items() if k != "image_source_password"}}
        if module.check_mode:
            module.exit_json(changed=True, diff=diff)
        try:
            created = component.create(spec)
        except ComponentError as err:
            fail_with(module, err, spec.get("name"))
        module.exit_json(changed=True, id=created["id"], image=ansible_image(created), diff=diff)

    try:
        plan = component.diff(spec, state)
    except ComponentError as err:
        fail_with(module, err, spec.get("name"))
    action = plan.get("action")
    if action != "replace" and content_differs(spec, state):
        action = "replace"
        plan.setdefault("changes", []).append(
            {"field": "filename (sha512)", "old": state.get("os_hash_value"), "new": "the file's"})
    diff = before_after(state, spec, plan)
    if action in (None, "no-op", "noop"):
        module.exit_json(changed=False, id=state["id"], image=ansible_image(state), diff=diff)
    if module.check_mode:
        module.exit_json(changed=True, id=state["id"], image=ansible_image(state), diff=diff)
    try:
        if action == "replace":
            if spec.get("image_id"):
                module.fail_json(msg="image %r: its content changed but `id` names the image; "
                                     "Glance never reuses an id: drop `id` to replace it" % spec.get("name"))
            new = component.create(spec)
            component.delete(state["id"], spec.get("region"))
            module.exit_json(changed=True, id=new["id"], image=ansible_image(new), replaced=state["id"], diff=diff)
        updated = component.update(state, spec)
    except ComponentError as err:
        fail_with(module, err, spec.get("name"))
    module.exit_json(changed=True, id=updated["id"], image=ansible_image(updated), diff=diff)


def absent(module, component, spec):
    state = existing(module, component, spec)
    if state is None:
        module.exit_json(changed=False)
    if not module.check_mode:
        try:
            component.delete(state["id"], state.get("region"))
        except ComponentError as err:
            fail_with(module, err, spec.get("name"))
    module.exit_json(changed=True, id=state["id"], diff={"before": {"id": state["id"]}, "after": {}})


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("filename", "image_source_url")],
        required_one_of=[("name", "id")],
        supports_check_mode=True,
    )
    component = open_component(module)
    spec = spec_of(module.params)
    if module.params["state"] == "absent":
        absent(module, component, spec)
    present(module, component, spec)


if __name__ == "__main__":
    main()
