# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the node_setup role: the variables a node-setup bundle carries, as YAML text."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping

from jinja2 import Environment, TemplateSyntaxError, meta

from ansible.errors import AnsibleFilterError
from ansible.plugins.filter.core import to_nice_yaml
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.hpc.pcluster.plugins.module_utils.plain_data import to_plain

# What a node knows about itself and the controller cannot know for it: its name and its facts. A variable whose
# definition uses one of these is written into the bundle as it is defined and rendered on each node.
NODE_OWN_VARIABLES = frozenset(("inventory_hostname", "inventory_hostname_short", "ansible_facts"))
NODE_OWN_VARIABLE_PREFIX = "ansible_"
_TEMPLATE_MARKS = ("{{", "{%", "{#")
# What a bundle's vars.yml carries about the cluster rather than about what a node applies to itself: the head
# node's name only decides that the node does not write the shared Slurm configuration (true of every compute node
# and of an image's build instance alike). Left out of the variables' identity, so that an image baked before the
# cluster existed can match the cluster's bundle.
CONTEXT_VARIABLES = ("pcluster_cluster_name", "node_setup_head_node")


def _strings(value):
    """Every string in a value (nested mappings and lists included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def referenced_names(value):
    """The names the templates in a value read; None when it holds no template (or one Jinja cannot parse)."""
    env, names, templated = Environment(), set(), False
    for text in _strings(value):
        if not any(mark in text for mark in _TEMPLATE_MARKS):
            continue
        templated = True
        try:
            names |= meta.find_undeclared_variables(env.parse(text))
        except TemplateSyntaxError:
            return None
    return names if templated else None


def _is_node_own_variable(name):
    return name in NODE_OWN_VARIABLES or name.startswith(NODE_OWN_VARIABLE_PREFIX)


def node_setup_vars(hostvars, host, pattern, extra=None):
    """The variables of ``host`` whose names match ``pattern``, plus ``extra``, as YAML text for a bundle's vars.yml.

    Each value is resolved on the controller, as ``hostvars[host]`` gives it, except those defined with a template
    that uses what only the node knows (``inventory_hostname``, ``inventory_hostname_short``, ``ansible_facts``,
    ``ansible_*``): those are written as defined and rendered by each node for itself, as the same roles applied
    over SSH render them for each host. Such a template may read, besides the node's own values, only variables
    the node has too (names matching ``pattern``, which the bundle or the roles' defaults give it); anything else
    is an error naming the variable, since no node could render it.
    """
    if host not in hostvars:
        raise AnsibleFilterError("node_setup_vars: %r is not a host of the inventory" % (host,))
    raw, resolved = hostvars.raw_get(host), hostvars[host]
    matcher = re.compile(pattern)
    out, problems = {}, []
    for name in sorted(n for n in raw if matcher.search(n)):
        names = referenced_names(raw[name])
        own = sorted(n for n in names or () if _is_node_own_variable(n))
        if not own:
            out[name] = resolved[name]
            continue
        unknown = sorted(n for n in names if not _is_node_own_variable(n) and not matcher.search(n))
        if unknown:
            problems.append("%s=%s uses %s, which each node renders for itself, and %s, which the nodes do not have "
                            "(not matched by node_setup_variable_pattern). Define it without %s, or give the nodes "
                            "%s under a name the pattern matches."
                            % (name, json.dumps(to_plain(raw[name])), ", ".join(own), ", ".join(unknown),
                               ", ".join(unknown), ", ".join(unknown)))
            continue
        out[name] = to_plain(raw[name])
    if problems:
        raise AnsibleFilterError("hpc.pcluster.node_setup: variables of %s the node-setup bundle cannot carry:\n%s"
                                 % (host, "\n".join(problems)))
    out.update(extra or {})
    # Unsafe: the templates kept for the nodes are text here, never rendered on the controller.
    return wrap_var(to_nice_yaml(out, indent=2, sort_keys=True))


def node_setup_vars_identity(vars_text):
    """What a node applies from a bundle's (or a baked image's) variables: ``{vars_digest, node_rendered}``.

    ``vars_digest`` is a SHA-256 (16 hex digits) of the variables in vars.yml but CONTEXT_VARIABLES, as sorted JSON,
    so that key order and YAML style do not count. ``node_rendered`` names the variables kept as templates for each
    node to render for itself: what an image baked them to fits its build instance, not a node.
    """
    import yaml  # pylint: disable=import-outside-toplevel

    try:
        data = yaml.safe_load(str(vars_text)) or {}
    except yaml.YAMLError as error:
        raise AnsibleFilterError("node_setup_vars_identity: the variables are not YAML: %s" % error) from None
    if not isinstance(data, Mapping):
        raise AnsibleFilterError("node_setup_vars_identity: the variables must be a YAML mapping")
    own = {name: value for name, value in data.items() if name not in CONTEXT_VARIABLES}
    text = json.dumps(own, sort_keys=True, separators=(",", ":"), default=str)
    rendered = sorted(name for name, value in own.items() if referenced_names(value) is not None)
    return {"vars_digest": hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], "node_rendered": rendered}


class FilterModule:
    """hpc.pcluster node-setup filters."""

    def filters(self):
        return {"node_setup_vars": node_setup_vars, "node_setup_vars_identity": node_setup_vars_identity}
