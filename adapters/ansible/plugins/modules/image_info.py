#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: image_info
short_description: Look up an OpenStack Glance image through the openstack-image component
version_added: "0.1.0"
description:
  - Finds the image named (or with the id) O(image), narrowed by O(filters), as
    C(openstack.cloud.image_info) does; the query is the component's C(find) (Terraform's image
    data source), run in the component's sandbox. Reads only.
  - Returns a list, like C(openstack.cloud.image_info), holding the one image found (the most
    recently created one with O(most_recent)), or nothing when none matches; several matches
    without O(most_recent) are an error.
options:
  image:
    description: The image's name or id.
    type: str
    aliases: [name]
  filters:
    description: Properties the image must have, and C(tags), C(visibility), C(owner), C(member_status), C(disk_format), C(container_format).
    type: dict
  most_recent:
    description: With several matches, take the newest instead of failing.
    type: bool
    default: false
  region:
    description: Region whose Glance to search (default the cloud's).
    type: str
extends_documentation_fragment:
  - openstackimage.cloud.auth
author:
  - openstack-image developers
"""

EXAMPLES = r"""
- name: The newest cirros image
  openstackimage.cloud.image_info:
    image: cirros
    most_recent: true
  register: found

- name: Its id
  ansible.builtin.debug:
    msg: "{{ found.images[0].id }}"
"""

RETURN = r"""
images:
  description: The image found (none when nothing matches), as C(openstackimage.cloud.image) returns one.
  returned: always
  type: list
  elements: dict
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.openstackimage.cloud.plugins.module_utils.openstackimage import (
    AUTH_ARGUMENT_SPEC,
    ComponentError,
    ansible_image,
    fail_with,
    open_component,
)

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Filters that are the query's own fields; every other filter is a property.
QUERY_FIELDS = ("visibility", "owner", "member_status", "disk_format", "container_format", "hidden",
                "size_min", "size_max", "sort", "name_regex")


def query_of(params):
    query = {"most_recent": params["most_recent"]}
    if params.get("image"):
        query["name"] = params["image"]
    if params.get("region"):
        query["region"] = params["region"]
    properties = {}
    for key, value in (params.get("filters") or {}).items():
        if key == "tags":
            query["tags"] = list(value)
        elif key in QUERY_FIELDS:
            query[key] = value
        else:
            properties[key] = value
    if properties:
        query["properties"] = properties
    return query


def main():
    argument_spec = dict(
        image=dict(type="str", aliases=["name"]),
        filters=dict(type="dict"),
        most_recent=dict(type="bool", default=False),
        region=dict(type="str"),
    )
    argument_spec.update(AUTH_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    component = open_component(module)
    image = module.params.get("image")
    try:
        if image and UUID.match(image):
            found = component.read(image)
        else:
            found = component.find(query_of(module.params))
    except ComponentError as err:
        if getattr(err, "kind", None) == "not-found":
            found = None
        else:
            fail_with(module, err, image)
    module.exit_json(changed=False, images=[ansible_image(found)] if found else [])


if __name__ == "__main__":
    main()
