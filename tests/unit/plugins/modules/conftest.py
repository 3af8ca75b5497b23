"""The recorded-response helpers of tests/unit/fixtures/pcluster, importable by name (``import fake_pcluster``)
in the tests of this folder; loaded by file, since the fixtures folder is not a package."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[4]
HELPERS = {
    "fake_pcluster": ROOT / "tests" / "unit" / "fixtures" / "pcluster" / "fake_pcluster.py",
    "pcluster_moto": ROOT / "tests" / "unit" / "plugins" / "inventory" / "pcluster_moto.py",
    "moto_cluster": ROOT / "sandbox" / "moto_cluster.py",
    "moto_image": ROOT / "sandbox" / "moto_image.py",
}


def load_helper(name):
    """The helper module ``name`` (one copy, shared with the tests that import it by name)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HELPERS[name])
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


for _name in HELPERS:
    load_helper(_name)
