"""Container checks: the plugstack files Slurm reads, and Docker/Enroot from the probe's answers."""

from ansible_collections.hpc.pcluster.plugins.module_utils.verify import container_checks as cc
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.check_report import CheckReport


def read(path):
    with open(path) as handle:
        return handle.read()


def test_plugstack_text_follows_its_includes(tmp_path):
    (tmp_path / "plugstack.conf.d").mkdir()
    (tmp_path / "plugstack.conf").write_text("include %s/plugstack.conf.d/*\n" % tmp_path)
    (tmp_path / "plugstack.conf.d" / "pyxis.conf").write_text("required /usr/local/lib/slurm/spank_pyxis.so\n")
    (tmp_path / "plugstack.conf.d" / "other.conf").write_text("optional /x.so\n")
    text = cc.plugstack_text(str(tmp_path / "plugstack.conf"), read)
    assert "required /usr/local/lib/slurm/spank_pyxis.so" in text and "optional /x.so" in text


def test_node_containers_from_the_probe():
    report = CheckReport({})
    cc.check_node_containers(report, "n1", {"docker": ["Docker version 24.0.7, build afdd53b"], "enroot": ["absent"]})
    assert [(c["check"], c["status"], c["seen"]) for c in report.checks] == [
        ("docker", "passed", "24.0.7"), ("enroot", "failed", "absent")]
    assert report.checks[1]["hint"] == "apply the enroot role (playbooks/containers.yml)"


def test_node_containers_without_docker_wanted():
    report = CheckReport({})
    cc.check_node_containers(report, "n1", {"docker": ["absent"], "enroot": ["enroot version 4.1.2"]}, docker_wanted=False)
    assert [(c["check"], c["status"]) for c in report.checks] == [("enroot", "passed")]
