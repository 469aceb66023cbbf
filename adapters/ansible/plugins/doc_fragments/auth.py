# -*- coding: utf-8 -*-
# Apache-2.0
# The options every module of openstackimage.cloud takes: openstack.cloud's authentication and
# connection options (its `openstack` doc fragment's names), and the component file.

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  cloud:
    description: A clouds.yaml cloud name, or a dict of cloud settings.
    type: raw
  auth:
    description: Authentication settings.
    type: dict
  auth_type:
    description: password, v3applicationcredential or v3token.
    type: str
  region_name:
    description: The cloud's region.
    type: str
  interface:
    description: The catalog interface.
    type: str
    choices: [public, internal, admin]
    aliases: [endpoint_type]
  validate_certs:
    description: Verify the cloud's TLS certificates.
    type: bool
    aliases: [verify]
  ca_cert:
    description: A CA bundle to trust for the cloud.
    type: str
    aliases: [cacert]
  client_cert:
    description: Accepted for C(openstack.cloud) playbooks; not used.
    type: str
    aliases: [cert]
  client_key:
    description: Accepted for C(openstack.cloud) playbooks; not used.
    type: str
    aliases: [key]
  api_timeout:
    description: Accepted for C(openstack.cloud) playbooks; not used.
    type: int
  sdk_log_path:
    description: Accepted for C(openstack.cloud) playbooks; not used.
    type: str
  sdk_log_level:
    description: Accepted for C(openstack.cloud) playbooks; not used.
    type: str
    default: INFO
    choices: [INFO, DEBUG]
  component:
    description: The openstack-image component file (default the one C(install.sh) installed, or C($OPENSTACK_IMAGE_COMPONENT)).
    type: path
requirements:
  - python >= 3.9
  - wasmtime == 48.0.0
"""
