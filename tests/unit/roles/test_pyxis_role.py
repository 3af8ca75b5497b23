"""Role hpc.pcluster.pyxis run for real with ansible-playbook on localhost as a head node, every path under the
test's own directory: a reload that failed is done by the next run, and a missing scontrol is named first."""

from __future__ import annotations

import pathlib

from ansible_collections.hpc.pcluster.tests.unit.roles import playbook_run
from ansible_collections.hpc.pcluster.tests.unit.roles.playbook_run import recap

HERE = pathlib.Path(__file__).resolve().parent / "pyxis"
SCONTROL = """#!/bin/sh
# scontrol, as far as the role uses it: each call is recorded; it fails while the 'broken' file exists.
echo "$@" >> "$(dirname "$0")/../calls"
[ ! -e "$(dirname "$0")/../broken" ]
"""


def node(tmp_path):
    """The stand-in plugin and scontrol under tmp_path."""
    (tmp_path / "spank_pyxis.so").write_bytes(b"stand-in; Slurm never loads it in this test\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "scontrol").write_text(SCONTROL)
    (tmp_path / "bin" / "scontrol").chmod(0o755)
    return {"pyxis_test_dir": str(tmp_path)}


def calls(tmp_path):
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_a_reload_that_failed_is_done_by_the_next_run(tmp_path):
    extra = node(tmp_path)
    pending = tmp_path / "state" / "slurm-reload-pending"
    (tmp_path / "broken").touch()
    first = playbook_run.ansible_playbook(HERE / "reload.yml", HERE / "inventory", extra=extra)
    assert first.returncode != 0 and recap(first, "failed") == 1, first.stdout
    assert calls(tmp_path) == ["reconfigure"] and pending.is_file()
    assert (tmp_path / "etc" / "plugstack.conf").is_file()  # the configuration is in place: nothing changes it again

    (tmp_path / "broken").unlink()
    second = playbook_run.ansible_playbook(HERE / "reload.yml", HERE / "inventory", extra=extra)
    assert second.returncode == 0, second.stdout + second.stderr
    assert calls(tmp_path) == ["reconfigure", "reconfigure"] and not pending.exists()
    assert "did not reload Slurm on localhost (the reload failed, or the run stopped before it)" in second.stdout

    third = playbook_run.ansible_playbook(HERE / "reload.yml", HERE / "inventory", extra=extra)
    assert third.returncode == 0 and recap(third, "changed") == 0, third.stdout
    assert calls(tmp_path) == ["reconfigure", "reconfigure"]


def test_a_missing_scontrol_is_named_with_its_variable_before_anything_changes(tmp_path):
    extra = dict(node(tmp_path), pyxis_slurm_bin_dir=str(tmp_path / "opt" / "slurm" / "bin"))
    result = playbook_run.ansible_playbook(HERE / "reload.yml", HERE / "inventory", extra=extra)
    assert result.returncode != 0
    text = " ".join(result.stdout.split())
    assert "%s/opt/slurm/bin/scontrol not found on localhost" % tmp_path in text, result.stdout
    assert "Set pyxis_slurm_bin_dir (the directory that holds scontrol" in text
    assert not (tmp_path / "etc").exists()
