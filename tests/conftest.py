"""Imports the collection the way ansible-test does for a collection's tests: Ansible's collection loader over
``collections/`` (where ``ansible_collections/hpc/pcluster`` links back to this checkout) resolves every
``ansible_collections.hpc.pcluster...`` import, the plugins' and the tests' own helpers alike."""

import pathlib

from ansible.plugins.loader import init_plugin_loader

init_plugin_loader([str(pathlib.Path(__file__).resolve().parents[1] / "collections")])
