"""A role's variable is declared once: where a role keeps both defaults/main.yml (the value Ansible uses) and a
default in meta/argument_specs.yml (the documented one, which Ansible checks against), the two say the same thing.
A default in defaults/main.yml that falls back to a shared variable (``{{ pcluster_region | default('') }}``) says
the same as the spec's default when its own fallback is that value."""

from __future__ import annotations

import ast
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
ROLES = sorted(p.parent.parent for p in ROOT.glob("roles/*/meta/argument_specs.yml"))
# The value an expression falls back to: "{{ x | default('v') }}" or "{{ [y] if y else [] }}".
FALLBACK = re.compile(r"(?:\|\s*default\((?P<default>.*?)(?:,\s*true)?\)|\belse\s+(?P<else>.+?))\s*}}$")


def spec_options(role):
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    return {(entry, name): option for entry, spec in specs.items() for name, option in (spec.get("options") or {}).items()}


def fallback(value):
    """The value a defaults/main.yml entry stands for when nothing else is set."""
    if not (isinstance(value, str) and "{{" in value):
        return value
    match = FALLBACK.search(value.strip())
    assert match, "no literal fallback in %r" % value
    return ast.literal_eval(match.group("default") or match.group("else"))


def same(value, spec_default):
    return value == spec_default or fallback(value) == fallback(spec_default)


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_defaults_and_the_spec_agree(role):
    defaults_file = role / "defaults" / "main.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
    options = spec_options(role)
    declared = {name for _entry, name in options}
    undeclared = sorted(name for name in defaults if name not in declared)
    assert not undeclared, "%s: defaults/main.yml sets variables its argument_specs.yml does not declare: %s" % (
        role.name, undeclared)
    differ = ["%s (%s): defaults/main.yml %r, argument_specs.yml %r" % (name, entry, defaults[name], option["default"])
              for (entry, name), option in sorted(options.items())
              if name in defaults and "default" in option and not same(defaults[name], option["default"])]
    assert not differ, "%s: the two defaults disagree:\n%s" % (role.name, "\n".join(differ))
