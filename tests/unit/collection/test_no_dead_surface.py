"""Every filter the collection exports has a caller in its roles or playbooks: a filter nothing calls is surface to
keep compatible for no one (the report formats behind the slurm_verify_report module live in module_utils)."""

from __future__ import annotations

import importlib
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[3]


def callers_text():
    paths = [p for p in ROOT.glob("roles/*/**/*") if p.suffix in (".yml", ".yaml", ".j2") and "molecule" not in p.parts]
    paths += list(ROOT.glob("playbooks/**/*.yml"))
    return "\n".join(path.read_text() for path in paths)


def exported_filters():
    for path in sorted(ROOT.glob("plugins/filter/*.py")):
        module = importlib.import_module("ansible_collections.hpc.pcluster.plugins.filter." + path.stem)
        for name in module.FilterModule().filters():
            yield path.name, name


def test_every_exported_filter_is_called():
    text = callers_text()
    unused = ["%s: %s" % (file, name) for file, name in exported_filters()
              if not re.search(r"\bhpc\.pcluster\.%s\b" % re.escape(name), text)]
    assert not unused, "exported filters no role or playbook calls: %s" % unused


def test_every_exported_filter_has_its_docs_and_every_doc_its_filter():
    names = {name for _file, name in exported_filters()}
    docs = {path.stem for path in ROOT.glob("plugins/filter/*.yml")}
    assert docs == names, {"docs without a filter": sorted(docs - names), "filters without docs": sorted(names - docs)}
