"""What EC2 Image Builder and ParallelCluster's cleanup function do at the end of a build, in moto.

`pcluster build-image` against moto runs for real up to the build stack: pcluster synthesizes its Image Builder
template, uploads the config and the template to its bucket and creates the stack, which moto's CloudFormation
completes at once with placeholder resources (moto has no Image Builder). What AWS then does, this module does:

- Image Builder distributes the AMI: its name is ``<Image.Name or image id> <build date>``, its tags the
  distribution configuration's ``AmiTags`` in the stack's template (``parallelcluster:image_id``, ``...:s3_bucket``,
  ``...:s3_image_dir``, ``...:version``, ...), plus ``parallelcluster:os`` from ParallelCluster's tag component;
- ParallelCluster's cleanup function (``delete_image_stack.py``), told by Image Builder that the image is
  AVAILABLE, tags the AMI ``parallelcluster:build_status=available`` and ``parallelcluster:parent_image`` and deletes
  the build stack.

``pcluster describe-image`` then reports BUILD_COMPLETE with the AMI, as on AWS.
"""

from __future__ import annotations

import datetime

import boto3
import yaml

DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _client(service, endpoint_url, region):
    return boto3.client(service, endpoint_url=endpoint_url, region_name=region, **DUMMY_CREDENTIALS)


def _template(cfn, stack):
    body = cfn.get_template(StackName=stack)["TemplateBody"]
    return body if isinstance(body, dict) else yaml.safe_load(body)


def _resolve(value, pseudo):
    """A template value with Fn::Join and Refs to pseudo parameters (AWS::Partition, ...) resolved."""
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(str(_resolve(part, pseudo)) for part in parts)
    if isinstance(value, dict) and "Ref" in value:
        return pseudo.get(value["Ref"], value["Ref"])
    return value


def build_outline(endpoint_url: str, region: str, image_id: str) -> dict:
    """What the build stack of ``image_id`` asks Image Builder for: {parent_image, ami_name, ami_tags, components (the
    URLs of the script components, in order)}."""
    cfn = _client("cloudformation", endpoint_url, region)
    resources = _template(cfn, image_id)["Resources"]
    recipe = next(r["Properties"] for r in resources.values() if r["Type"] == "AWS::ImageBuilder::ImageRecipe")
    distribution = next(r["Properties"] for r in resources.values()
                        if r["Type"] == "AWS::ImageBuilder::DistributionConfiguration")
    ami = distribution["Distributions"][0]["AmiDistributionConfiguration"]
    # pcluster describes a script component as "... script name is <name>, script url is <url>".
    components = {int(name[len("ScriptComponent"):]): r for name, r in resources.items()
                  if r["Type"] == "AWS::ImageBuilder::Component" and name[len("ScriptComponent"):].isdigit()}
    scripts = [components[index]["Properties"]["Description"].rsplit("script url is ", 1)[-1].strip()
               for index in sorted(components)]
    account = _client("sts", endpoint_url, region).get_caller_identity()["Account"]
    pseudo = {"AWS::Partition": "aws", "AWS::Region": region, "AWS::AccountId": account}
    tags = {key: _resolve(value, pseudo) for key, value in (ami.get("AmiTags") or {}).items()}
    return {"parent_image": recipe["ParentImage"], "ami_name": ami["Name"], "ami_tags": tags, "components": scripts}


def finish_build(endpoint_url: str, region: str, image_id: str, os_name: str | None = None,
                 build_date: str | None = None) -> str:
    """Register the AMI the build of ``image_id`` makes, tagged as AWS tags it, and delete the build stack.

    Returns the AMI id. ``os_name`` is the ``parallelcluster:os`` tag (the parent image's OS, e.g. ubuntu2204).
    """
    outline = build_outline(endpoint_url, region, image_id)
    ec2 = _client("ec2", endpoint_url, region)
    parent = ec2.describe_images(ImageIds=[outline["parent_image"]])["Images"][0]
    date = build_date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S.000Z")
    name = outline["ami_name"].replace("{{ imagebuilder:buildDate }}", date)
    root = parent.get("RootDeviceName") or "/dev/sda1"
    ami = ec2.register_image(Name=name, Architecture=parent.get("Architecture") or "x86_64", RootDeviceName=root,
                             VirtualizationType="hvm", Description="ParallelCluster custom image %s" % image_id,
                             BlockDeviceMappings=[{"DeviceName": root, "Ebs": {"VolumeSize": 35, "VolumeType": "gp3"}}])
    tags = dict(outline["ami_tags"])
    if os_name:
        tags["parallelcluster:os"] = os_name
    tags.update({"parallelcluster:build_status": "available", "parallelcluster:parent_image": outline["parent_image"]})
    ec2.create_tags(Resources=[ami["ImageId"]], Tags=[{"Key": k, "Value": str(v)} for k, v in sorted(tags.items())])
    _client("cloudformation", endpoint_url, region).delete_stack(StackName=image_id)
    return ami["ImageId"]
