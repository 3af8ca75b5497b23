# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cluster config files: the one loader, the YAML writer, comparison, and the config ParallelCluster stored."""

from __future__ import annotations

import os
import re
import stat

from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import problem, short_repr
from ansible_collections.hpc.pcluster.plugins.module_utils.plain_data import to_plain

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False


# The largest config file read: ParallelCluster's own full example is about 20 kB.
MAX_CONFIG_BYTES = 1024 * 1024
# The most nodes aliases may add to a config once followed, beyond the nodes written out. A ParallelCluster
# config has a few hundred; an alias bomb ("billion laughs") of a few hundred bytes expands to billions.
MAX_EXPANDED_NODES = 100000
# What a key of a ParallelCluster config looks like (its own PascalCase keys, Slurm parameter names). Any other
# key is reported by its line only, never shown: a file that is not a config (a link to /etc/shadow) would
# otherwise have its lines echoed as unknown keys.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# ParallelCluster 3's top-level keys of a cluster config (pcluster.schemas.cluster_schema.ClusterSchema) and of an
# image config (pcluster.schemas.imagebuilder_schema.ImageBuilderSchema).
TOP_LEVEL_KEYS = ("AdditionalPackages", "AdditionalResources", "CustomS3Bucket", "DeploymentSettings", "DevSettings",
                  "DirectoryService", "HeadNode", "Iam", "Image", "Imds", "LoginNodes", "Monitoring", "Region",
                  "Scheduling", "SharedStorage", "Tags")
IMAGE_TOP_LEVEL_KEYS = ("Build", "CustomS3Bucket", "DeploymentSettings", "DevSettings", "Image", "Region")


class ConfigAliasBomb(Exception):
    """A YAML document whose aliases add more than MAX_EXPANDED_NODES nodes."""


def _config_loader(duplicates, odd_keys):
    """A SafeLoader class that records duplicate keys, leaves out (and records) keys no config has, and counts the
    nodes aliases expand to."""

    class _ConfigLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
        def __init__(self, stream):
            super().__init__(stream)
            self.expanded = {}  # id(node) -> nodes it stands for, aliases followed

        def compose_node(self, parent, index):
            node = super().compose_node(parent, index)
            if id(node) not in self.expanded:
                children = node.value if isinstance(node, yaml.SequenceNode) else (
                    [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
                self.expanded[id(node)] = 1 + sum(self.expanded.get(id(child), 1) for child in children)
            # Nodes written out count once each (len(self.expanded)): only what aliases add is limited, so a long
            # plain list is not taken for a bomb.
            if self.expanded[id(node)] - len(self.expanded) > MAX_EXPANDED_NODES:
                raise ConfigAliasBomb("line %d" % (node.start_mark.line + 1))
            return node

    def _construct_mapping(loader, node, deep=False):
        keys, kept = set(), []
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if not isinstance(key, str) or not KEY_PATTERN.match(key):
                odd_keys.append((key_node.start_mark.line + 1, len(str(key)), isinstance(key, str)))
                continue
            if key in keys:
                duplicates.append((key, key_node.start_mark.line + 1))
            keys.add(key)
            kept.append((key_node, value_node))
        node.value = kept
        return loader.construct_mapping(node, deep=deep)

    _ConfigLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    return _ConfigLoader


def yaml_error_text(error):
    """What is wrong and where, from a YAML error, without the snippet of the file PyYAML would quote."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    what = getattr(error, "problem", None) or getattr(error, "context", None) or type(error).__name__
    return "%s%s" % (what, " (line %d, column %d)" % (mark.line + 1, mark.column + 1) if mark else "")


def _odd_key_problems(odd_keys, source):
    return [problem("", None, "%s, line %d: a key no ParallelCluster config has (%s of %d characters, not only "
                    "letters, digits, - and _); it is not shown, and left out of the checks"
                    % (source, line, "text" if is_text else "a non-text key", length),
                    "Remove or rename the key on that line.")
            for line, length, is_text in odd_keys]


def load_config_text(text, source, kind="cluster"):
    """Parse YAML config text; returns (config, problems), never raises for bad input.

    Duplicate keys are problems (YAML would keep the last one silently), and so is a key no config has (by its line
    only; it is left out of the config returned). Aliases that add more than MAX_EXPANDED_NODES nodes, invalid YAML,
    a document that is not a mapping and a mapping without any of ParallelCluster's top-level keys are problems with
    config None. No problem quotes the text beyond the keys a config has. kind: "cluster" or "image", the config
    whose top-level keys the text must have.
    """
    if not HAS_YAML:  # pragma: no cover
        raise ImportError("PyYAML is required to read config files")
    duplicates, odd_keys = [], []
    try:
        config = yaml.load(text, Loader=_config_loader(duplicates, odd_keys))  # nosec - a SafeLoader subclass
    except ConfigAliasBomb as error:
        return None, [problem("", None, "%s: YAML aliases (at %s) expand to more than %d nodes, far beyond any cluster "
                              "config" % (source, error, MAX_EXPANDED_NODES),
                              "Write the config without nested aliases (anchors and * references).")]
    except yaml.YAMLError as error:
        return None, [problem("", None, "%s is not valid YAML: %s" % (source, yaml_error_text(error)),
                              "Fix the YAML syntax.")]
    if config is not None and not isinstance(config, dict):
        return None, [problem("", type(config).__name__, "%s must hold a YAML mapping (a ParallelCluster config)" % source,
                              "Write the config as a mapping with Region, Image, HeadNode, Scheduling, ...")]
    known = IMAGE_TOP_LEVEL_KEYS if kind == "image" else TOP_LEVEL_KEYS
    if (config is not None or odd_keys) and not any(key in known for key in config or {}):
        return None, [problem("", None, "%s is not a ParallelCluster %s config: none of its top-level keys is one "
                              "ParallelCluster knows (its content is not shown)" % (source, kind),
                              "Give the path of %s %s config (top-level keys %s)."
                              % ("an" if kind == "image" else "a", kind, ", ".join(known)))]
    problems = _odd_key_problems(odd_keys, source) + [
        problem("", key, "The key %s appears twice in one mapping (line %d); YAML keeps only the last one" % (short_repr(key), line),
                "Remove the duplicate key.")
        for key, line in duplicates
    ]
    return config, problems


def _read_limited(path):
    """The bytes of a regular file of at most MAX_CONFIG_BYTES; (None, reason) otherwise. Never blocks on a FIFO
    or a device, never reads more than the limit."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as error:
        return None, "Cannot read config_file %s: %s" % (path, error.strerror or error)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "config_file %s is not a regular file" % path
        if info.st_size > MAX_CONFIG_BYTES:
            return None, "config_file %s is %d bytes, more than the %d a cluster config may have" % (
                path, info.st_size, MAX_CONFIG_BYTES)
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        return None, "config_file %s grew beyond %d bytes while it was read" % (path, MAX_CONFIG_BYTES)
    return data, None


def load_config_file(path):
    """Read and parse a YAML config file with load_config_text; returns (config, problems).

    A file that cannot be read, is not a regular file, is larger than MAX_CONFIG_BYTES (refused before it is
    parsed) or is not UTF-8 is a problem too (config is then None).
    """
    data, refused = _read_limited(path)
    if refused:
        return None, [problem("", path, refused, "Give the path of a readable ParallelCluster config file.")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, [problem("", path, "config_file %s is not UTF-8 text (byte %d: %s)" % (path, error.start, error.reason),
                              "Save the file as UTF-8.")]
    return load_config_text(text, path)


def desired_config(params):
    """The config a module is given, from its ``config`` (a dict) or ``config_file`` (a YAML path) option.

    Raises ValueError naming the file and every problem with it (unreadable, not YAML, duplicate keys, empty).
    """
    if params.get("config") is not None:
        return to_plain(params["config"])
    path = params["config_file"]
    config, problems = load_config_file(path)
    if problems or config is None:
        reasons = "; ".join("%s. Fix: %s" % (item["message"].rstrip("."), item["fix"]) for item in problems) or "the file is empty"
        raise ValueError(reasons if path in reasons else "config_file %s: %s" % (path, reasons))
    return config


CLUSTER_CONFIG_HEADER = "ParallelCluster 3 cluster configuration written by the hpc.pcluster.cluster_config role."


def render_yaml(config, header=CLUSTER_CONFIG_HEADER):
    """The config as YAML text under a ``# header`` line: block style, keys in the order built, every string safely
    quoted."""
    if not HAS_YAML:  # pragma: no cover
        raise ImportError("PyYAML is required to write the config")

    class _Dumper(yaml.SafeDumper):  # pylint: disable=too-many-ancestors
        def increase_indent(self, flow=False, indentless=False):
            return super().increase_indent(flow, False)

    def _str(dumper, data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", str(data))

    _Dumper.add_multi_representer(str, _str)
    text = yaml.dump(to_plain(config), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=1000)
    return "# %s\n%s" % (header, text)


def normalise_config(value):
    """A config in a canonical form for comparison only.

    None-valued keys are dropped, and scalars become strings with booleans in
    lower case, so ``2``/``"2"`` and ``true``/``"True"`` compare equal, as they do
    once pcluster has loaded the YAML through its schema.
    """
    if isinstance(value, dict):
        return {str(k): normalise_config(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [normalise_config(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        return text.lower() if text.lower() in ("true", "false") else text
    return value


def config_differences(before, after, path=""):
    """Human-readable paths that differ between two normalised configs."""
    changes = []
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            sub = "%s.%s" % (path, key) if path else key
            if key not in before:
                changes.append("%s: added" % sub)
            elif key not in after:
                changes.append("%s: removed" % sub)
            else:
                changes.extend(config_differences(before[key], after[key], sub))
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after)):
            changes.extend(config_differences(old, new, "%s[%d]" % (path, index)))
    elif before != after:
        if isinstance(before, (dict, list)) or isinstance(after, (dict, list)):
            changes.append("%s: changed" % (path or "<config>"))
        else:
            changes.append("%s: %s -> %s" % (path or "<config>", before, after))
    return changes


def config_yaml(config):
    import yaml  # pylint: disable=import-outside-toplevel

    if config is None:
        return ""
    return yaml.safe_dump(to_plain(config), default_flow_style=False, sort_keys=True)


def stored_config_url_problem(url, endpoint_url=None):
    """Why the stored config may not be fetched from ``url`` (None when it may).

    Only https: the URL is a bearer token (a presigned S3 URL). Plain http only from the host of an
    explicit http endpoint_url (a local S3 stand-in such as moto); never file:// or other schemes.
    """
    from urllib.parse import urlparse  # pylint: disable=import-outside-toplevel

    scheme = urlparse(url).scheme.lower()
    if scheme == "https":
        return None
    endpoint = urlparse(endpoint_url or "")
    if scheme == "http" and endpoint.scheme == "http" and endpoint.hostname and endpoint.hostname == urlparse(url).hostname:
        return None
    return ("describe-cluster gave a %s:// URL for the stored config; only https is accepted (http only from the "
            "host of an explicit http endpoint_url)" % (scheme or "schemeless"))


def fetch_stored_config(describe, endpoint_url=None, timeout=30, opener=None, key="clusterConfiguration"):
    """The config ParallelCluster stored for a cluster (the S3 object behind describe-cluster's
    clusterConfiguration.url), or for an image (``key`` "imageConfiguration", from describe-image).

    Returns (config dict or None, None or a reason it could not be read). The reason never holds the URL.
    """
    url = ((describe or {}).get(key) or {}).get("url")
    if not url or url == "NOT_AVAILABLE":
        return None, "ParallelCluster gave no URL for the stored config (%s.url: %s)" % (key, url or "absent")
    refused = stored_config_url_problem(url, endpoint_url)
    if refused:
        return None, refused
    if opener is None:
        from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel

        opener = open_url
    last_error = None
    for _attempt in range(2):
        try:
            with opener(url, timeout=timeout) as response:
                body = response.read()
            break
        except Exception as exc:  # pylint: disable=broad-except
            last_error = getattr(exc, "code", None) or type(exc).__name__
    else:
        return None, "could not download the stored config (%s)" % last_error
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        return None, "the stored config is not UTF-8 text"
    config, problems = load_config_text(text, "the stored config",
                                        kind="image" if key == "imageConfiguration" else "cluster")
    if problems or not isinstance(config, dict):
        return None, "; ".join(item["message"] for item in problems) or "the stored config is not a YAML mapping"
    return config, None
