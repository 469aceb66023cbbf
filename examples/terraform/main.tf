# openstack_images_image_v2 through terraform-provider-openstackimage (adapters/terraform).
# Install the provider with adapters/terraform/install.sh, point OS_* at a cloud
# (eval "$(scripts/dev-cloud env)"), make demo.qcow2 (qemu-img create -f qcow2 demo.qcow2 64M),
# then: terraform init && terraform apply.
terraform {
  required_providers {
    openstackimage = {
      source  = "openstack-image/openstackimage"
      version = "0.1.0"
    }
  }
}

# Credentials from OS_* or clouds.yaml (`cloud = "mycloud"`), as terraform-provider-openstack.
provider "openstackimage" {
  memory_limit_mib = 256
}

resource "openstack_images_image_v2" "demo" {
  provider         = openstackimage
  name             = "terraform-demo"
  container_format = "bare"
  disk_format      = "qcow2"
  local_file_path  = "${path.module}/demo.qcow2"
  min_disk_gb      = 1
  tags             = ["demo", "terraform"]
  properties = {
    os_distro = "cirros"
  }

  timeouts {
    create = "10m"
  }
}

# The newest image named terraform-demo with the tag "demo" (read once the image exists).
data "openstack_images_image_v2" "latest" {
  provider    = openstackimage
  name        = "terraform-demo"
  tag         = "demo"
  most_recent = true
  depends_on  = [openstack_images_image_v2.demo]
}

output "image_id" {
  value = openstack_images_image_v2.demo.id
}

output "checksum" {
  value = data.openstack_images_image_v2.latest.checksum
}
