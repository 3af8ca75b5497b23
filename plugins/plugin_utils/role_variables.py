# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster_config role's variables as its meta/argument_specs.yml declares them: typed, defaulted.

The role hands its spec over (``role_path``/meta/argument_specs.yml, read by the role); nothing here looks for it.
"""

from __future__ import annotations

import difflib
import re

from ansible.module_utils.common.parameters import DEFAULT_TYPE_VALIDATORS

from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import format_path, problem, short_repr

PREFIX = "cluster_config_"
# Facts the role sets; they share the prefix but are not inputs.
OUTPUT_NAMES = ("cluster_config_data", "cluster_config_file", "cluster_config_validation",
                "cluster_config_node_setup_script")
# The collection's variable the builder reads besides its own (role hpc.pcluster.pcluster declares it).
CLUSTER_NAME = "pcluster_cluster_name"
# Variables the role had and does not have any more: what to set instead.
REPLACED = {"cluster_config_cluster_name": CLUSTER_NAME}

_TYPE_NAMES = {"str": "string", "int": "whole number", "bool": "boolean", "list": "list", "dict": "mapping"}
_MARKUP = re.compile(r"\b[COVIMP]\(([^)]*)\)")


def role_options(spec):
    """The options of the role's main entry point, from its meta/argument_specs.yml as parsed YAML."""
    try:
        options = spec["argument_specs"]["main"]["options"]
    except (KeyError, TypeError):
        options = None
    if not isinstance(options, dict):
        raise ValueError("not a role's argument spec: expected argument_specs.main.options (the role's "
                         "meta/argument_specs.yml)")
    return options


def plain_description(spec):
    """An option's description without Ansible's C()/O()/V() markup, first paragraph only."""
    text = spec.get("description") or ""
    if isinstance(text, list):
        text = text[0] if text else ""
    return _MARKUP.sub(r"\1", " ".join(text.split()))


def blank(value):
    """Unset or empty: inventory placeholders are empty strings."""
    return value is None or (isinstance(value, str) and value.strip() == "")


class RoleVariables:
    """Typed access to the role's variables, collecting a problem for each one that cannot be used."""

    def __init__(self, variables, options):
        self.raw = dict(variables or {})
        self.options = options
        self.problems = []
        self._cache = {}

    def convert(self, value, spec, variable):
        """value as the spec's type (Ansible's own converters, as its argument validation uses); None on error."""
        kind = spec.get("type", "raw")
        if value is None or kind == "raw":
            return value
        try:
            value = DEFAULT_TYPE_VALIDATORS[kind](value)
        except (TypeError, ValueError):
            self.problems.append(problem("", short_repr(value), "%s must be a %s, not %s" % (
                variable, _TYPE_NAMES.get(kind, kind), type(value).__name__),
                "Give %s a %s value." % (variable, _TYPE_NAMES.get(kind, kind)), variable))
            return None
        if kind == "list" and spec.get("elements") not in (None, "raw", "dict"):  # mappings: see item()
            element = {"type": spec["elements"]}
            value = [self.convert(item, element, "%s[%d]" % (variable, index)) for index, item in enumerate(value)]
        return value

    def get(self, name):
        """The variable cluster_config_<name>, converted, or its declared default when unset."""
        if name not in self._cache:
            spec = self.options[PREFIX + name]
            value = self.raw.get(PREFIX + name)
            self._cache[name] = self.convert(spec.get("default") if value is None else value, spec, PREFIX + name)
        return self._cache[name]

    def required(self, name, path, condition=True):
        """A required value; reports it as missing, with what to set, when it is empty."""
        value = self.get(name)
        if blank(value) and condition:
            variable = PREFIX + name
            self.problems.append(problem(path, value, "%s is required and not set" % variable,
                                         "Set %s: %s" % (variable, plain_description(self.options[variable])),
                                         variable))
            return None
        return value

    def unknown_variables(self):
        """A problem for each cluster_config_* variable the role does not know (probably misspelt)."""
        known = set(self.options) | set(OUTPUT_NAMES)
        for name in sorted(self.raw):
            if name in REPLACED:
                self.problems.append(problem("", self.raw[name], "%s is gone: the cluster's name is %s, the one every "
                                             "playbook and role uses" % (name, REPLACED[name]),
                                             "Set %s instead." % REPLACED[name], name))
            elif name.startswith(PREFIX) and name not in known:
                close = difflib.get_close_matches(name, sorted(self.options), n=1)
                self.problems.append(problem("", None, "Unknown variable %s" % name,
                                             ("Did you mean %s? " % close[0] if close else "")
                                             + "See roles/cluster_config/README.md for the variables.", name))

    def item(self, item, variable, options):
        """A mapping item of a list variable (a queue, a compute resource, a pool): the keys it sets, converted,
        plus the declared defaults of the keys it leaves out.

        Unknown keys are problems. Returns None (and a problem) when the item is not a mapping.
        """
        if not isinstance(item, dict):
            self.problems.append(problem("", short_repr(item), "%s must be a mapping" % variable,
                                         "Give it as a mapping with the keys listed in the README.", variable))
            return None
        for key in item:
            if key not in options:
                close = difflib.get_close_matches(str(key), list(options), n=1)
                self.problems.append(problem("", key, "%s has an unknown key %s" % (variable, short_repr(key)),
                                             ("Did you mean %s? " % close[0] if close else "")
                                             + "Known keys: %s." % ", ".join(sorted(options)), variable))
        settings = {}
        for key, spec in options.items():
            if item.get(key) is not None:
                settings[key] = self.convert(item[key], spec, "%s.%s" % (variable, key))
            elif spec.get("default") is not None:
                settings[key] = spec["default"]
        return settings

    def missing_keys(self, settings, variable, options, path, names):
        """A problem for each required key of an item that is empty; names maps keys to config names."""
        for key, spec in options.items():
            if spec.get("required") and (blank(settings.get(key)) or settings.get(key) == []):
                self.problems.append(problem(path + (names.get(key, key),), None,
                                             "%s.%s is required" % (variable, key),
                                             "Set %s.%s." % (variable, key), variable))


class Sources:
    """Which variable produced which config path ({path text: variable})."""

    def __init__(self):
        self.paths = {}

    def add(self, path, variable):
        self.paths[format_path(path)] = variable

    def add_all(self, pairs, base=()):
        for path, variable in pairs:
            self.add(base + path, variable)
