"""A CloudFormation template: parsing, parameters, conditions, intrinsic functions, dependencies.

What CloudFormation documents for these functions, applied to one stack's values:
``Ref`` (parameters, pseudo parameters, resources' physical ids), ``Fn::GetAtt``, ``Fn::Join``,
``Fn::Sub`` (both forms, ``${!Literal}``), ``Fn::Select``, ``Fn::Split``, ``Fn::If`` with
``AWS::NoValue``, ``Fn::Equals``/``And``/``Or``/``Not``, ``Condition``, ``Fn::Base64``,
``Fn::FindInMap``, ``Fn::GetAZs``, ``Fn::ImportValue``, ``Fn::ToJsonString``.
"""

from __future__ import annotations

import base64
import json
import re

import yaml

NO_VALUE = object()  # AWS::NoValue: the property is left out
PSEUDO_PARAMETERS = ("AWS::AccountId", "AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix",
                     "AWS::Partition", "AWS::NoValue", "AWS::NotificationARNs")
SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(Exception):
    """A template or parameter CloudFormation refuses (ValidationError)."""


def parse(text) -> dict:
    """The template as a dict, from JSON or YAML text (YAML short forms such as !Ref included)."""
    if isinstance(text, dict):
        return text
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        data = yaml.load(text, Loader=_ShortFormLoader)  # noqa: S506 - a loader of our own, safe constructors only
    except yaml.YAMLError as exc:
        raise TemplateError(f"Template format error: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError("Template format error: not a JSON or YAML mapping")
    return data


class _ShortFormLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    """YAML with CloudFormation's short forms: !Ref X -> {"Ref": X}, !GetAtt A.B -> {"Fn::GetAtt": [A, B]}."""


def _short_form(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_ShortFormLoader.add_multi_constructor("!", _short_form)


def references(value) -> set:
    """Every name a template value refers to (Ref, Fn::GetAtt, Fn::Sub variables)."""
    found = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner.split(".", 1)[0] if isinstance(inner, str) else inner[0]
                found.add(target)
            elif key == "Fn::Sub":
                text, variables = (inner, {}) if isinstance(inner, str) else (inner[0], inner[1])
                for name in SUB_VARIABLE.findall(text):
                    if not name.startswith("!") and name not in variables:
                        found.add(name.split(".", 1)[0])
                found |= references(variables)
            else:
                found |= references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= references(inner)
    return found


def dependencies(resources: dict) -> dict:
    """logical id -> the resources it needs first (DependsOn and what it refers to)."""
    out = {}
    for logical_id, definition in resources.items():
        depends_on = definition.get("DependsOn") or []
        needs = {depends_on} if isinstance(depends_on, str) else set(depends_on)
        needs |= references({k: v for k, v in definition.items() if k not in ("DependsOn", "Type")})
        out[logical_id] = {name for name in needs if name in resources and name != logical_id}
    return out


def resolve_parameters(template: dict, given: dict, previous: dict | None = None) -> dict:
    """The stack's parameter values: given, else the previous value when asked for, else the default.
    Raises TemplateError naming parameters without a value, and unknown ones."""
    declared = template.get("Parameters") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TemplateError(f"Parameters: {unknown} do not exist in the template")
    values, missing = {}, []
    for name, spec in declared.items():
        if name in given:
            value = given[name]
            if value is None and previous is not None and name in previous:  # UsePreviousValue
                value = previous[name]
        else:
            value = spec.get("Default")
        if value is None:
            missing.append(name)
            continue
        value = str(value)
        allowed = spec.get("AllowedValues")
        if allowed and value not in [str(a) for a in allowed]:
            raise TemplateError(f"Parameter '{name}' must be one of AllowedValues")
        values[name] = value
    if missing:
        raise TemplateError(f"Parameters: {missing} must have values")
    return values


class Scope:
    """What a stack's intrinsic functions read: parameters, pseudo parameters, conditions, mappings,
    and resources through ``resource_ref(logical_id)`` / ``resource_att(logical_id, attribute)``."""

    def __init__(self, template: dict, parameters: dict, pseudo: dict, resource_ref, resource_att,
                 import_value=None):
        self.template = template
        self.parameters = parameters
        self.pseudo = pseudo
        self.resource_ref = resource_ref
        self.resource_att = resource_att
        self.import_value = import_value
        self._conditions: dict = {}

    # ------------------------------------------------------------------ conditions

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            definitions = self.template.get("Conditions") or {}
            if name not in definitions:
                raise TemplateError(f"Template error: unresolved condition dependency {name}")
            self._conditions[name] = bool(self._condition_value(definitions[name]))
        return self._conditions[name]

    def _condition_value(self, value):
        if isinstance(value, dict) and len(value) == 1:
            key, args = next(iter(value.items()))
            if key == "Condition":
                return self.condition(args)
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in args)
                return str(left) == str(right)
            if key == "Fn::And":
                return all(self._condition_value(a) for a in args)
            if key == "Fn::Or":
                return any(self._condition_value(a) for a in args)
            if key == "Fn::Not":
                return not self._condition_value(args[0])
        return self.resolve(value)

    def included(self, definition: dict) -> bool:
        """Whether a resource or output with this definition exists (its Condition holds)."""
        return "Condition" not in definition or self.condition(definition["Condition"])

    # ------------------------------------------------------------------ values

    def ref(self, name: str):
        if name in self.parameters:
            value = self.parameters[name]
            kind = ((self.template.get("Parameters") or {}).get(name) or {}).get("Type", "String")
            if kind == "CommaDelimitedList" or kind.startswith("List<"):
                return [item.strip() for item in value.split(",")] if value else []
            return value
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in (self.template.get("Resources") or {}):
            return self.resource_ref(name)
        raise TemplateError(f"Template format error: Unresolved resource dependencies [{name}] in the Resources block of the template")

    def resolve(self, value):
        """value with every intrinsic function replaced by its result (AWS::NoValue leaves keys out)."""
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            key, args = next(iter(value.items()))
            function = _FUNCTIONS.get(key)
            if function is not None:
                return function(self, args)
        out = {}
        for key, inner in value.items():
            resolved = self.resolve(inner)
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def sub(self, args) -> str:
        text, variables = (args, {}) if isinstance(args, str) else (args[0], args[1])
        values = {name: self.resolve(v) for name, v in variables.items()}

        def replace(match):
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                return str(values[name])
            if "." in name and name.split(".", 1)[0] in (self.template.get("Resources") or {}):
                target, attribute = name.split(".", 1)
                return str(self.resource_att(target, attribute))
            return str(self.ref(name))

        return SUB_VARIABLE.sub(replace, text)

    def get_att(self, args):
        target, attribute = args.split(".", 1) if isinstance(args, str) else (args[0], self.resolve(args[1]))
        if target not in (self.template.get("Resources") or {}):
            raise TemplateError(f"Template error: instance of Fn::GetAtt references undefined resource {target}")
        return self.resource_att(target, attribute)


def _join(scope, args):
    delimiter, items = args
    items = scope.resolve(items)
    return str(delimiter).join(str(item) for item in items)


def _select(scope, args):
    index, items = scope.resolve(args[0]), scope.resolve(args[1])
    return items[int(index)]


def _split(scope, args):
    return str(scope.resolve(args[1])).split(args[0])


def _if(scope, args):
    name, when_true, when_false = args
    return scope.resolve(when_true if scope.condition(name) else when_false)


def _base64(scope, args):
    return base64.b64encode(str(scope.resolve(args)).encode()).decode()


def _find_in_map(scope, args):
    name, first, second = (scope.resolve(a) for a in args)
    try:
        return (scope.template.get("Mappings") or {})[name][first][second]
    except KeyError as exc:
        raise TemplateError(f"Template error: Unable to get mapping for {name}::{first}::{second}") from exc


def _get_azs(scope, args):
    region = scope.resolve(args) or scope.pseudo["AWS::Region"]
    return [f"{region}{zone}" for zone in "abcdef"]


def _import_value(scope, args):
    name = scope.resolve(args)
    if scope.import_value is None:
        raise TemplateError(f"No export named {name} found.")
    return scope.import_value(name)


def _to_json_string(scope, args):
    return json.dumps(scope.resolve(args), separators=(",", ":"))


def _condition(scope, args):
    return scope.condition(args)


_FUNCTIONS = {
    "Ref": lambda scope, args: scope.ref(args),
    "Fn::GetAtt": lambda scope, args: scope.get_att(args),
    "Fn::Join": _join,
    "Fn::Sub": lambda scope, args: scope.sub(args),
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::If": _if,
    "Fn::Base64": _base64,
    "Fn::FindInMap": _find_in_map,
    "Fn::GetAZs": _get_azs,
    "Fn::ImportValue": _import_value,
    "Fn::ToJsonString": _to_json_string,
    "Condition": _condition,
}
