# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image_config role's builder: its settings -> a ParallelCluster image config, its image id, its problems."""

from __future__ import annotations

import copy
import hashlib
import json

from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import (
    merge_problems,
    name_variables,
    problem,
    short_repr,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.image.config import check_image_id, validate_image_config
from ansible_collections.hpc.pcluster.plugins.plugin_utils.config_builder import deep_merge

PREFIX = "image_config_"
# The build instance when image_config_instance_type is empty: a general-purpose type of the image's architecture
# (the bake needs no GPU; ParallelCluster checks the type against the parent image's architecture).
BUILD_INSTANCE_TYPES = {"x86_64": "c5.2xlarge", "arm64": "c6g.2xlarge"}
# Config path -> the variable behind it, for naming the variable in every problem.
SOURCES = {
    "Build.ParentImage": "parent_image", "Build.InstanceType": "instance_type", "Build.SubnetId": "subnet_id",
    "Build.SecurityGroupIds": "security_group_ids", "Build.Components": "script_location",
    "Build.UpdateOsPackages": "update_os_packages", "Build.Tags": "tags", "Image.Tags": "tags",
    "Image.RootVolume": "root_volume_size", "Image.Name": "image_id",
}


def config_digest(config):
    """12 hex digits of SHA-256 over the config as sorted JSON: the same config, the same image id."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()[:12]


def _tags(tags, problems):
    items = []
    for key, value in sorted((tags or {}).items()):
        if isinstance(value, (dict, list)) or value is None:
            problems.append(problem("Build.Tags", short_repr(value), "%stags[%s] must be a string" % (PREFIX, key),
                                    "Give every tag a string value.", PREFIX + "tags"))
            continue
        items.append({"Key": str(key), "Value": ("true" if value else "false") if isinstance(value, bool) else str(value)})
    return items


def _build(settings, problems):
    build = {"InstanceType": settings.get("instance_type") or BUILD_INSTANCE_TYPES.get(settings.get("architecture")),
             "ParentImage": settings.get("parent_image")}
    if settings.get("subnet_id"):
        build["SubnetId"] = settings["subnet_id"]
        build["SecurityGroupIds"] = list(settings.get("security_group_ids") or [])
    if settings.get("update_os_packages"):
        build["UpdateOsPackages"] = {"Enabled": True}
    url = settings.get("bake_script_url")
    if url:
        build["Components"] = [{"Type": "script", "Value": url}]
    else:
        problems.append(problem("Build.Components", None, "There is no s3:// folder to put the bake script in: "
                                "%sscript_location is empty and so is the folder of the node-setup boot script"
                                % PREFIX, "Set %sscript_location to an s3:// folder the build instance may read, e.g. "
                                "s3://my-bucket/bootstrap/." % PREFIX, PREFIX + "script_location"))
    return build


def build_image_config(settings):
    """The image config from the role's settings (names without the image_config_ prefix, plus ``bake_script_url``).

    Returns {config, image_id, problems, sources}: the image id is the given one, else ``<image_id_prefix>-<digest>``
    of the config; problems are the builder's, the collection's offline rules and ParallelCluster's image schema,
    each naming its variable.
    """
    problems = []
    config = {"Build": _build(settings, problems)}
    tags = _tags(settings.get("tags"), problems)
    if tags:
        config["Build"]["Tags"] = tags
        config["Image"] = {"Tags": copy.deepcopy(tags)}
    if settings.get("root_volume_size"):
        config.setdefault("Image", {})["RootVolume"] = {"Size": settings["root_volume_size"]}
    config = deep_merge(config, settings.get("overrides") or {})
    image_id = settings.get("image_id") or "%s-%s" % (settings.get("image_id_prefix"), config_digest(config))
    if check_image_id(image_id, problems, "Image.Name"):
        config.setdefault("Image", {})["Name"] = image_id
    found, _checked, _note = validate_image_config(config)
    sources = {path: PREFIX + name for path, name in SOURCES.items()}
    sources.update({path: PREFIX + "overrides" for path in _leaf_paths(settings.get("overrides") or {}) if path})
    problems = name_variables(merge_problems(problems, found), sources)
    if not settings.get("image_id"):
        for item in problems:
            if item.get("variable") == PREFIX + "image_id":
                item["variable"] = PREFIX + "image_id_prefix"
    return {"config": config, "image_id": image_id, "problems": problems, "sources": sources}


def _leaf_paths(data, path=""):
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaf_paths(value, "%s.%s" % (path, key) if path else str(key))
    else:
        yield path
