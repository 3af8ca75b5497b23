"""hpc.pcluster.slurm_node_wait against a fake scontrol whose node states move on at each look."""

import json
import socket
import stat

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.hpc.pcluster.plugins.modules import slurm_node_wait

# Each call to `scontrol -o show node` answers the next line of states.txt (the last one repeats).
FAKE_SCONTROL = """#!/bin/sh
case "$*" in
  "-o show node")
    n=$(cat "$FAKE_DIR/calls" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$FAKE_DIR/calls"
    state=$(sed -n "${n}p" "$FAKE_DIR/states.txt"); [ -n "$state" ] || state=$(tail -n 1 "$FAKE_DIR/states.txt")
    echo "NodeName=q-st-cr-1 Arch=x86_64 State=$state Partitions=q Reason=(null)"
    echo "NodeName=q-st-cr-2 Arch=x86_64 State=IDLE Partitions=q Reason=(null)" ;;
  "-o show partition") echo "PartitionName=q Nodes=q-st-cr-[1-2] State=$(cat "$FAKE_DIR/partition")" ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    (tmp_path / "scontrol").write_text(FAKE_SCONTROL)
    (tmp_path / "scontrol").chmod(0o755 | stat.S_IXUSR)
    (tmp_path / "partition").write_text("UP")
    monkeypatch.setenv("FAKE_DIR", str(tmp_path))
    return tmp_path


def run(capsys, fake, states, **args):
    (fake / "states.txt").write_text("\n".join(states) + "\n")
    with patch_module_args(dict({"nodes": ["q-st-cr-1", "q-st-cr-2"], "slurm_bin_dir": str(fake),
                                 "poll_interval": 1}, **args)):
        with pytest.raises(SystemExit):
            slurm_node_wait.main()
    return json.loads(capsys.readouterr().out)


def test_waits_until_a_node_has_powered_up(fake, capsys):
    result = run(capsys, fake, ["IDLE+CLOUD+POWERED_DOWN", "IDLE+CLOUD+POWERING_UP", "IDLE+CLOUD"], timeout=30)
    assert result["settled"] is True and result["waiting"] == {}
    assert result["states"] == {"q-st-cr-1": "IDLE+CLOUD", "q-st-cr-2": "IDLE"}
    assert (fake / "calls").read_text().strip() == "3"
    assert 1.5 < result["elapsed"] < 10 and result["changed"] is False


def test_returns_the_nodes_still_on_their_way_at_the_timeout(fake, capsys):
    progress = fake / "progress"
    result = run(capsys, fake, ["IDLE+COMPLETING"], timeout=2, progress_file=str(progress))
    assert result["settled"] is False and result["timed_out"] is True
    assert result["waiting"] == {"q-st-cr-1": "IDLE+COMPLETING"} and "failed" not in result
    lines = progress.read_text().splitlines()
    host = socket.gethostname()
    assert lines == [
        "[%s] waiting up to 2s for 1 static node(s) in a transitional state: q-st-cr-1 IDLE+COMPLETING" % host,
        "[%s] 1 static node(s) still in a transitional state after 2s, judged as they are: "
        "q-st-cr-1 IDLE+COMPLETING" % host]
    assert oct(progress.stat().st_mode & 0o777) == "0o600"


def test_does_not_wait_while_the_partition_is_inactive(fake, capsys):
    (fake / "partition").write_text("INACTIVE")
    result = run(capsys, fake, ["IDLE+CLOUD+POWERED_DOWN"], timeout=30)
    assert result["settled"] is True and result["not_waited"] == {"q-st-cr-1": "partition q is INACTIVE"}
    assert (fake / "calls").read_text().strip() == "1"
