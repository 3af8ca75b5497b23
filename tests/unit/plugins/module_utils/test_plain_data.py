"""Ansible's tagged and unsafe values become plain Python that a YAML dumper and a comparison accept."""

from __future__ import annotations

import yaml

from ansible.utils.unsafe_proxy import AnsibleUnsafeText

from ansible_collections.hpc.pcluster.plugins.module_utils.plain_data import to_plain


def test_unsafe_and_nested_values_become_plain():
    value = {AnsibleUnsafeText("Region"): AnsibleUnsafeText("us-east-1"), 1: (True, None, 2.5, [3])}
    plain = to_plain(value)
    assert plain == {"Region": "us-east-1", "1": [True, None, 2.5, [3]]}
    assert isinstance(plain["Region"], str) and not isinstance(plain["Region"], AnsibleUnsafeText)
    assert yaml.safe_dump(plain)


def test_other_types_are_written_as_text():
    assert to_plain({"when": object}) == {"when": str(object)}
