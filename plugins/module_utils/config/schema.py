# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ParallelCluster's own config schemas (cluster, image) run offline: their messages as problems, with no AWS call."""

from __future__ import annotations

import contextlib
import copy
import os
import re
import warnings

from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import problem, value_at

try:
    import importlib.util

    HAS_PCLUSTER_SCHEMA = importlib.util.find_spec("pcluster") is not None
except (ImportError, ValueError):  # pragma: no cover
    HAS_PCLUSTER_SCHEMA = False

_SCHEMA_FIXES = (
    ("cannot be specified when an existing", "Remove it: with an existing file system only its id is allowed."),
    ("Unknown field", "Remove the key or correct its spelling (keys are case-sensitive, PascalCase)."),
    ("Missing data for required field", "Add this required key."),
    ("Must be one of", "Use one of the values listed."),
    ("does not match expected pattern", "Use a value of the expected form (see the ParallelCluster reference)."),
    ("Not a valid integer", "Use a whole number."),
    ("Not a valid boolean", "Use true or false."),
    ("Not a valid string", "Use a string."),
    ("Invalid input type", "Use the type the ParallelCluster reference gives for this key."),
    ("greater than or equal", "Use a larger value."),
    ("less than or equal", "Use a smaller value."),
)


class SchemaNeedsAws(Exception):
    """pcluster's schema tried an AWS call during the offline check; the call was refused before it was sent."""

    def __init__(self, operation):
        super().__init__(operation)
        self.operation = operation


def schema_fix(message, path, kind="cluster"):
    """The fix for one of pcluster's schema messages (``kind``: the cluster's or the image's config)."""
    for marker, fix in _SCHEMA_FIXES:
        if marker.lower() in message.lower():
            return fix
    last = next((p for p in reversed(path) if isinstance(p, str)), "the config")
    return "See the ParallelCluster 3 %s configuration reference for %s." % (kind, last)


def _snake(name):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def flatten_messages(messages, path=()):
    """marshmallow's nested .messages -> [(path tuple, message)]."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == "_schema":
                yield from flatten_messages(value, path)
            else:
                yield from flatten_messages(value, path + (key,))
    elif isinstance(messages, (list, tuple)):
        for item in messages:
            if isinstance(item, (dict, list, tuple)):
                yield from flatten_messages(item, path)
            else:
                yield path, str(item)
    else:
        yield path, str(messages)


def refine(config, path, message):
    """Point a schema-level message at the key it names and say that key in PascalCase."""
    node = value_at(config, path) if path else config
    if not isinstance(node, dict):
        return path, message
    named = [key for key in node if isinstance(key, str) and re.search(r"\b%s\b" % re.escape(_snake(key)), message)]
    for key in named:
        message = re.sub(r"\b%s\b" % re.escape(_snake(key)), key, message)
    if len(named) == 1:
        return path + (named[0],), message
    return path, message


@contextlib.contextmanager
def region_environment(region):
    """pcluster's schema asks for a region (for defaults only); give it one for the duration."""
    saved = os.environ.get("AWS_DEFAULT_REGION")
    if not saved:
        os.environ["AWS_DEFAULT_REGION"] = region if isinstance(region, str) and region else "us-east-1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved


@contextlib.contextmanager
def no_aws_calls():
    """Refuse every botocore API call for the duration, before credentials are looked up or a request is sent."""
    import botocore.client  # pylint: disable=import-outside-toplevel

    original = botocore.client.BaseClient._make_api_call  # pylint: disable=protected-access

    def refuse(_client, operation_name, _api_params):
        raise SchemaNeedsAws(operation_name)

    botocore.client.BaseClient._make_api_call = refuse  # pylint: disable=protected-access
    try:
        yield
    finally:
        botocore.client.BaseClient._make_api_call = original  # pylint: disable=protected-access


def _schema(kind, cluster_name):
    with warnings.catch_warnings():
        # marshmallow 3 warns about pcluster's use of deprecated field arguments.
        warnings.simplefilter("ignore")
        if kind == "image":
            from pcluster.schemas.imagebuilder_schema import ImageBuilderSchema  # pylint: disable=import-outside-toplevel

            return ImageBuilderSchema()
        from pcluster.schemas.cluster_schema import ClusterSchema  # pylint: disable=import-outside-toplevel

        return ClusterSchema(cluster_name=cluster_name or "cluster")


def schema_problems(config, cluster_name, kind="cluster"):
    """Run pcluster's ClusterSchema (``kind`` "image": its ImageBuilderSchema) in-process and offline; returns a list
    of problems.

    The schema is validated, not loaded: loading builds pcluster's cluster object, whose
    constructor asks EC2 about capacity reservations. Any AWS call is refused anyway
    (SchemaNeedsAws is raised). Raises ImportError when aws-parallelcluster is not installed.
    """
    schema = _schema(kind, cluster_name)
    found = []
    data = copy.deepcopy(config)
    with region_environment(config.get("Region") if isinstance(config, dict) else None), no_aws_calls():
        try:
            messages = schema.validate(data)
        except SchemaNeedsAws:
            raise
        except Exception as error:  # pylint: disable=broad-except
            return [problem("", None, "pcluster's schema could not load the config: %s" % error,
                            "Check the types of the values (mappings, lists, numbers) against the reference.")]
    for path, message in flatten_messages(messages):
        path, message = refine(config, path, message)
        # An unknown key is named, its value not shown: it is not what is wrong.
        value = value_at(config, path) if path and "unknown field" not in message.lower() else None
        found.append(problem(path, value if not isinstance(value, (dict, list)) else None, message,
                             schema_fix(message, path, kind)))
    return found
