"""hpc.pcluster.slurm_verify_report: the report files and the latest link."""

import json
import os
import xml.etree.ElementTree as ET

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.hpc.pcluster.plugins.modules import slurm_verify_report as rep


def test_report_module_writes_all_formats_and_latest(tmp_path, capsys):
    checks = [{"check": "node_state", "node": "n1", "expected": "idle", "seen": "DOWN", "status": "failed", "hint": "h"}]
    for stamp in ("20260101T000000Z", "20260101T000100Z"):
        with patch_module_args({"path": str(tmp_path / "c" / stamp), "checks": checks, "meta": {"cluster": "c"},
                                "data": {"cluster": "c"}}):
            with pytest.raises(SystemExit):
                rep.main()
        result = json.loads(capsys.readouterr().out)
        assert result["summary"] == {"passed": 0, "failed": 1, "not_available": 0, "total": 1}
    latest = tmp_path / "c" / "latest"
    assert os.readlink(latest) == "20260101T000100Z"
    document = json.loads((latest / "report.json").read_text())
    assert document["cluster"] == "c" and document["checks"] == checks
    assert ET.parse(latest / "junit.xml").getroot().find("testsuite").get("failures") == "1"
    assert "| **FAILED** | node_state | n1 | idle | DOWN | h |" in (latest / "report.md").read_text()
    assert oct((latest / "report.md").stat().st_mode & 0o777) == "0o644"


def test_report_module_check_mode_writes_nothing(tmp_path, capsys):
    with patch_module_args({"path": str(tmp_path / "r"), "checks": [], "_ansible_check_mode": True}):
        with pytest.raises(SystemExit):
            rep.main()
    assert json.loads(capsys.readouterr().out)["changed"] is False
    assert not (tmp_path / "r").exists()
