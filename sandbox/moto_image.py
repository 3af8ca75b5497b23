"""What EC2 Image Builder and ParallelCluster's cleanup function do to moto at the end of an image build.

`pcluster build-image` against the sandbox's moto runs for real up to the build: pcluster synthesizes its Image
Builder template, uploads the config and the template to its bucket and creates the stack, whose
``AWS::ImageBuilder::Image`` the sandbox's image builder builds (moto_cfn/imagebuilder.py, image_builder.py).
What AWS then does to the account, this module does:

- Image Builder distributes the AMI (``register_ami``): its name is the distribution's ``<Image.Name or image id>
  {{ imagebuilder:buildDate }}`` with the date, its tags the distribution's ``AmiTags``
  (``parallelcluster:image_id``, ``...:s3_bucket``, ``...:s3_image_dir``, ``...:version``, ...), plus
  ``parallelcluster:os`` from ParallelCluster's tag component;
- ParallelCluster's cleanup function (``delete_image_stack.py``), told by Image Builder that the image is
  AVAILABLE, tags the AMI ``parallelcluster:build_status=available`` and ``parallelcluster:parent_image`` and
  deletes the build stack (``mark_available``).

``pcluster describe-image`` then reports BUILD_COMPLETE with the AMI, as on AWS.
"""

from __future__ import annotations

import datetime
import re

import moto_cluster

# The OS part of a ParallelCluster AMI's name -> its Image.Os name (pcluster's OS_TO_IMAGE_NAME_PART_MAP).
OS_NAME_PARTS = {"amzn2023-hvm": "alinux2023", "ubuntu-2204-lts-hvm": "ubuntu2204", "ubuntu-2404-lts-hvm": "ubuntu2404",
                 "rhel8-hvm": "rhel8", "rocky8-hvm": "rocky8", "rhel9-hvm": "rhel9", "rocky9-hvm": "rocky9"}


def client(service, endpoint_url, region):
    """Image Builder's and the cleanup function's calls, signed as the sandbox's admin (AWS's services act as
    themselves; moto enforcing IAM would refuse a key it does not know)."""
    return moto_cluster.client(service, endpoint_url, region)


def os_of(ami_name: str | None) -> str | None:
    """The Image.Os of a ParallelCluster AMI from its name, or None."""
    for part, name in OS_NAME_PARTS.items():
        if part in (ami_name or ""):
            return name
    return None


def register_ami(endpoint_url: str, region: str, request: dict, build_date: str | None = None) -> str:
    """Register the AMI a build request (moto_cfn/imagebuilder.py) asks Image Builder to distribute; returns its id."""
    ec2 = client("ec2", endpoint_url, region)
    parent = ec2.describe_images(ImageIds=[request["parent_image"]])["Images"][0]
    date = build_date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S.000Z")
    name = re.sub(r"\{\{\s*imagebuilder:buildDate\s*\}\}", date, request.get("ami_name") or request["stack_name"])
    root = parent.get("RootDeviceName") or "/dev/sda1"
    ami = ec2.register_image(Name=name, Architecture=parent.get("Architecture") or "x86_64", RootDeviceName=root,
                             VirtualizationType="hvm", Description="AWS ParallelCluster AMI for %s" % os_of(parent.get("Name")),
                             BlockDeviceMappings=[{"DeviceName": root, "Ebs": {"VolumeSize": 35, "VolumeType": "gp3"}}])
    tags = {key: str(value) for key, value in (request.get("ami_tags") or {}).items()}
    if os_of(parent.get("Name")):
        tags["parallelcluster:os"] = os_of(parent.get("Name"))
    ec2.create_tags(Resources=[ami["ImageId"]], Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])
    return ami["ImageId"]


def mark_available(endpoint_url: str, region: str, ami_id: str, parent_image: str, stack: str) -> None:
    """What ParallelCluster's cleanup function does once Image Builder says the image is AVAILABLE."""
    client("ec2", endpoint_url, region).create_tags(Resources=[ami_id], Tags=[
        {"Key": "parallelcluster:build_status", "Value": "available"},
        {"Key": "parallelcluster:parent_image", "Value": parent_image}])
    client("cloudformation", endpoint_url, region).delete_stack(StackName=stack)
