"""EC2 Image Builder's resources in ParallelCluster's image template (``pcluster build-image``).

moto has no Image Builder. The components, the image recipe and the infrastructure and distribution
configurations get the ARNs Image Builder gives them and keep their properties; nothing else is made.
``AWS::ImageBuilder::Image`` - the build itself - is handed to the sandbox's image builder
(``sandbox/image_builder.py``) through a directory both see, ``SANDBOX_IMAGE_BUILDS``:

* the driver writes ``<arn as a file name>.request.json``: the image's ARN, its stack, the parent image,
  the components in the recipe's order (a script component's URL, as ParallelCluster describes it), the
  build instance's type, subnet, security groups and instance profile, the AMI's name and tags, and the
  build's log group and stream (``/aws/imagebuilder/<recipe name>``, ``<recipe version>/1``);
* the builder claims it (``.claimed``), builds, and answers in ``.result.json``:
  ``{"status": "AVAILABLE", "ami_id": ...}`` completes the resource, ``{"status": "FAILED", "reason": ...}``
  fails it with Image Builder's reason - and the stack with it, as on AWS.

A request no builder claims within CLAIM_SECONDS fails, saying so; a build that takes longer than
BUILD_SECONDS fails as Image Builder's own timeout would.
"""

from __future__ import annotations

import json
import os
import re
import time

from .resources import Driver, ResourceFailed, UnknownAttribute

BUILDS_VARIABLE = "SANDBOX_IMAGE_BUILDS"
CLAIM_SECONDS = float(os.environ.get("SANDBOX_IMAGE_CLAIM_SECONDS", "60"))
BUILD_SECONDS = 4 * 3600.0
# Resource type -> (the ARN's resource kind, whether the ARN carries the version, and a build number).
KINDS = {
    "AWS::ImageBuilder::Component": ("component", True, True),
    "AWS::ImageBuilder::ImageRecipe": ("image-recipe", True, False),
    "AWS::ImageBuilder::InfrastructureConfiguration": ("infrastructure-configuration", False, False),
    "AWS::ImageBuilder::DistributionConfiguration": ("distribution-configuration", False, False),
}


def image_builder_arn(ctx, kind: str, name: str, version: str | None = None, build: bool = False) -> str:
    arn = f"arn:aws:imagebuilder:{ctx.region}:{ctx.account_id}:{kind}/{name.lower()}"
    if version:
        arn += f"/{version}" + ("/1" if build else "")
    return arn


def request_name(arn: str) -> str:
    """The file name of a build's request and answer: its ARN with what a file name cannot hold replaced."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", arn)


def _by_arn(ctx, arn: str):
    return next((r for r in ctx.stack.resources.values() if r.physical_id == arn), None)


class ConfigurationDriver(Driver):
    """A component, a recipe, an infrastructure or distribution configuration: its ARN and properties."""

    UPDATE_REPLACES = ("*",)

    def __init__(self, resource_type: str):
        self.kind, self.versioned, self.build = KINDS[resource_type]

    def create(self, ctx, res):
        version = res.properties.get("Version") if self.versioned else None
        res.physical_id = image_builder_arn(ctx, self.kind, res.properties.get("Name") or res.logical_id, version,
                                            self.build)

    def get_att(self, res, name):
        if name == "Arn":
            return res.physical_id
        if name == "Name":
            return res.properties.get("Name")
        raise UnknownAttribute(name)


def component_request(res) -> dict:
    """What the builder needs of one component: ParallelCluster describes a script component as
    '... script name is <name>, script url is <url>'; its own components carry their document (Data)."""
    description = res.properties.get("Description") or ""
    script = description.rsplit("script url is ", 1)[-1].strip() if "script url is " in description else None
    return {"logical_id": res.logical_id, "name": res.properties.get("Name"), "arn": res.physical_id,
            "description": description, "script_url": script}


def build_request(ctx, res) -> dict:
    props = res.properties
    recipe = _by_arn(ctx, props.get("ImageRecipeArn"))
    infrastructure = _by_arn(ctx, props.get("InfrastructureConfigurationArn"))
    distribution = _by_arn(ctx, props.get("DistributionConfigurationArn"))
    if recipe is None or infrastructure is None or distribution is None:
        raise ResourceFailed("The image's recipe, infrastructure or distribution configuration is not in the stack")
    components = [_by_arn(ctx, c.get("ComponentArn")) for c in recipe.properties.get("Components") or []]
    ami = ((distribution.properties.get("Distributions") or [{}])[0]).get("AmiDistributionConfiguration") or {}
    infra = infrastructure.properties
    return {
        "image_arn": res.physical_id, "stack_name": ctx.stack.name, "stack_id": ctx.stack.stack_id,
        "region": ctx.region, "account_id": ctx.account_id, "parent_image": recipe.properties.get("ParentImage"),
        "components": [component_request(c) for c in components if c is not None],
        "instance_type": (infra.get("InstanceTypes") or [None])[0], "subnet_id": infra.get("SubnetId"),
        "security_group_ids": infra.get("SecurityGroupIds") or [], "instance_profile": infra.get("InstanceProfileName"),
        "terminate_instance_on_failure": infra.get("TerminateInstanceOnFailure", True),
        "ami_name": ami.get("Name"), "ami_tags": ami.get("AmiTags") or {}, "image_tags": props.get("Tags") or {},
        "log_group": "/aws/imagebuilder/%s" % recipe.properties.get("Name"),
        "log_stream": "%s/1" % recipe.properties.get("Version"), "requested_at": time.time(),
    }


class ImageDriver(Driver):
    """The image build, by the sandbox's image builder (see the module's docstring)."""

    UPDATE_REPLACES = ("*",)

    def create(self, ctx, res):
        recipe = _by_arn(ctx, res.properties.get("ImageRecipeArn"))
        name, version = (recipe.properties.get("Name"), recipe.properties.get("Version")) if recipe else (res.logical_id, "1.0.0")
        res.physical_id = image_builder_arn(ctx, "image", name, version, build=True)
        directory = os.environ.get(BUILDS_VARIABLE)
        if not directory:
            raise ResourceFailed(f"The sandbox runs no image builder ({BUILDS_VARIABLE} is not set for its moto server)")
        base = os.path.join(directory, request_name(res.physical_id))
        os.makedirs(directory, exist_ok=True)
        for leftover in (".claimed", ".result.json"):
            if os.path.exists(base + leftover):
                os.unlink(base + leftover)
        tmp = base + ".request.json.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(build_request(ctx, res), handle, indent=2, sort_keys=True)
        os.replace(tmp, base + ".request.json")
        started = time.monotonic()

        def poll():
            try:
                with open(base + ".result.json", encoding="utf-8") as handle:
                    result = json.load(handle)
            except (OSError, ValueError):
                result = None
            if result is not None:
                if result.get("status") == "AVAILABLE":
                    res.data["ami_id"] = result.get("ami_id")
                    return True
                raise ResourceFailed(result.get("reason") or "Image Builder reported the build FAILED")
            waited = time.monotonic() - started
            if not os.path.exists(base + ".claimed") and waited > CLAIM_SECONDS:
                raise ResourceFailed(f"No image builder of the sandbox took the build within {CLAIM_SECONDS:.0f} s "
                                     f"(requests in {directory})")
            if waited > BUILD_SECONDS:
                raise ResourceFailed("Image Builder's build timed out")
            return False

        return poll

    def delete(self, ctx, res):
        directory = os.environ.get(BUILDS_VARIABLE)
        if directory and res.physical_id:
            for suffix in (".request.json", ".claimed", ".result.json"):
                path = os.path.join(directory, request_name(res.physical_id) + suffix)
                if os.path.exists(path):
                    os.unlink(path)

    def get_att(self, res, name):
        if name == "Arn":
            return res.physical_id
        if name == "ImageId":
            return res.data.get("ami_id")
        if name == "Name":
            return res.physical_id.split("/")[-3] if res.physical_id else None
        raise UnknownAttribute(name)


DRIVERS = {**{resource_type: ConfigurationDriver(resource_type) for resource_type in KINDS},
           "AWS::ImageBuilder::Image": ImageDriver()}
