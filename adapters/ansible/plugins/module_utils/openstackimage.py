# -*- coding: utf-8 -*-
# Shared by the modules of openstackimage.cloud: the openstack.cloud collection's
# authentication options, the component (run through the Python adapter, wasmtime-py), and
# the mapping between Ansible parameters and the component's spec and state documents.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import traceback

IMPORT_ERROR = None
try:
    from ansible_collections.openstackimage.cloud.plugins.module_utils.openstack_image_component import (
        ComponentError,
        ImageComponent,
        leaves_url_to_glance,
    )
except ImportError:  # wasmtime missing, or the collection was not installed by install.sh
    IMPORT_ERROR = traceback.format_exc()
    ComponentError = Exception
    ImageComponent = None
    leaves_url_to_glance = None

try:
    from ansible_collections.openstackimage.cloud.plugins.module_utils._installed import COMPONENT
except ImportError:
    COMPONENT = None

# openstack.cloud's authentication options (its `openstack` doc fragment), same names.
AUTH_ARGUMENT_SPEC = dict(
    cloud=dict(type="raw"),
    auth=dict(type="dict", no_log=True),
    auth_type=dict(type="str"),
    region_name=dict(type="str"),
    interface=dict(type="str", choices=["public", "internal", "admin"], aliases=["endpoint_type"]),
    validate_certs=dict(type="bool", aliases=["verify"]),
    ca_cert=dict(type="str", aliases=["cacert"]),
    # openstack.cloud's connection options that do not apply here are accepted and ignored,
    # so its playbooks run unchanged: the component makes its own connections.
    client_cert=dict(type="str", aliases=["cert"]),
    client_key=dict(type="str", no_log=False, aliases=["key"]),
    api_timeout=dict(type="int"),
    sdk_log_path=dict(type="str"),
    sdk_log_level=dict(type="str", default="INFO", choices=["INFO", "DEBUG"]),
    # This collection's own: the component file (default: the one install.sh installed).
    component=dict(type="path"),
)

# Spec fields whose Ansible parameter has another name (openstack.cloud.image's).
PARAMETER_OF_FIELD = {
    "local_file_path": "filename",
    "min_disk_gb": "min_disk",
    "min_ram_mb": "min_ram",
    "image_id": "id",
}


def missing_requirements(module):
    """Fails the task when the adapter or its component cannot be loaded, saying how to fix it."""
    if IMPORT_ERROR is not None:
        module.fail_json(
            msg="openstackimage.cloud needs wasmtime (wasmtime==48.0.0) in the Python that runs "
                "this module and the collection as adapters/ansible/install.sh installs it",
            exception=IMPORT_ERROR,
        )


def component_path(module):
    path = module.params.get("component") or os.environ.get("OPENSTACK_IMAGE_COMPONENT") or COMPONENT
    if not path or not os.path.isfile(path):
        module.fail_json(
            msg="no openstack-image component at %r: give `component:`, set OPENSTACK_IMAGE_COMPONENT, "
                "or run adapters/ansible/install.sh" % (path,)
        )
    return path


def cloud_settings(module):
    """The clouds.yaml cloud entry the options give (the top layer of the component's one cloud
    rule: these settings, then the OS_* variables, then clouds.yaml's `cloud`)."""
    p = module.params
    settings = {}
    cloud = p.get("cloud")
    if isinstance(cloud, dict):
        settings.update(cloud)
    elif cloud:
        # A clouds.yaml cloud by name: the component reads it as OS_CLOUD.
        os.environ["OS_CLOUD"] = str(cloud)
    if p.get("auth"):
        settings["auth"] = dict(settings.get("auth") or {}, **p["auth"])
    for option, key in (("auth_type", "auth_type"), ("region_name", "region_name"),
                        ("interface", "interface"), ("ca_cert", "cacert")):
        if p.get(option) is not None:
            settings[key] = p[option]
    if p.get("validate_certs") is not None:
        settings["verify"] = p["validate_certs"]
    return settings or None


def open_component(module):
    missing_requirements(module)
    try:
        return ImageComponent(
            component_path(module),
            cloud=cloud_settings(module),
            progress=lambda event: None,  # stdout is the module's JSON answer; stay quiet
        )
    except Exception as e:  # a broken or foreign component file
        module.fail_json(msg="cannot load the openstack-image component: %s" % e,
                         exception=traceback.format_exc())


def fail_with(module, err, image=None):
    """Fails the task with a component error, naming Ansible's parameters for its fields."""
    what = "image %r: " % image if image else ""
    fields = getattr(err, "fields", None) or []
    if fields:
        problems = ["%s: %s" % (PARAMETER_OF_FIELD.get(f["field"], f["field"]), f["message"]) for f in fields]
        module.fail_json(msg=what + "; ".join(problems), kind=getattr(err, "kind", None),
                         fields=[dict(f, parameter=PARAMETER_OF_FIELD.get(f["field"], f["field"])) for f in fields])
    module.fail_json(msg=what + "%s" % (getattr(err, "message", None) or err), kind=getattr(err, "kind", None))


def ansible_image(state):
    """The image as the task returns it: the component's flat state plus openstack.cloud.image's
    names for the same values (min_disk, min_ram, size, is_public, is_protected, ...)."""
    if state is None:
        return None
    image = dict(state)
    image.pop("image_source_password", None)
    image["min_disk"] = state.get("min_disk_gb")
    image["min_ram"] = state.get("min_ram_mb")
    image["size"] = state.get("size_bytes")
    image["is_public"] = state.get("visibility") == "public"
    image["is_protected"] = state.get("protected")
    image["is_hidden"] = state.get("hidden")
    return image
