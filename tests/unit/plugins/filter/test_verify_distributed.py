"""Filters of the distributed checks: groups, expected bandwidth, host lists, the report section."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.hpc.pcluster.plugins.filter import verify_distributed as vd


def node(name, partition="gpu", itype="p5.48xlarge", gpus=8, efa=True, static=True):
    return {"name": name, "partition": partition, "instance_type": itype, "gpus": gpus, "efa": efa, "static": static}


NETWORK = {"p5.48xlarge": {"gbps": 3200.0, "busbw_gbs": 400.0, "source": "EC2 DescribeInstanceTypes: x"},
           "c5n.18xlarge": {"gbps": 100.0, "busbw_gbs": 12.5, "source": "built-in table"}}


def test_hostlist():
    assert vd.verify_hostlist(["q-st-a-1", "q-st-a-2", "q-st-a-4", "q-st-a-5", "q-st-a-6"]) == "q-st-a-[1-2,4-6]"
    assert vd.verify_hostlist(["q-st-a-1"]) == "q-st-a-1"
    assert vd.verify_hostlist(["a-1", "a-2", "b-1", "head"]) == "a-[1-2],b-1,head"
    assert vd.verify_hostlist([]) == ""


def test_usable_nodes_are_those_whose_node_state_passed():
    checks = [{"check": "node_state", "node": "a", "status": "passed"},
              {"check": "node_state", "node": "b", "status": "failed"},
              {"check": "srun", "node": "c", "status": "passed"}]
    assert vd.verify_usable_nodes(checks) == ["a"]


def test_gpu_and_cpu_groups_with_expected_figures():
    nodes = [node("gpu-st-p5-%d" % i) for i in (1, 2)] + \
        [node("cpu-st-c5n-%d" % i, "cpu", "c5n.18xlarge", 0, False) for i in (1, 2, 3)] + \
        [node("gpu-dy-p5-1", static=False)]
    usable = ["gpu-st-p5-1", "gpu-st-p5-2", "cpu-st-c5n-1", "cpu-st-c5n-3"]
    runs = vd.verify_distributed_groups(nodes, usable, NETWORK)
    assert [(r["backend"], r["label"]) for r in runs] == [("nccl", "gpu-st-p5-[1-2]"), ("mpi", "cpu-st-c5n-[1-3]")]
    gpu, cpu = runs
    assert gpu["gpus_per_node"] == 8 and gpu["efa"] and gpu["expected_busbw"] == 400.0 and gpu["min_fraction"] == 0.5
    assert "p5.48xlarge network 3200 Gbps = 400 GB/s" in gpu["expected_source"]
    assert cpu["nodes"] == ["cpu-st-c5n-1", "cpu-st-c5n-3"]
    assert cpu["excluded"] == [{"name": "cpu-st-c5n-2", "reason": "node_state did not pass"}]
    assert cpu["min_fraction"] == 0.25 and cpu["expected_busbw"] == 12.5


def test_on_by_default_only_with_two_static_nodes():
    one = [node("gpu-st-p5-1"), node("gpu-dy-p5-1", static=False)]
    assert vd.verify_distributed_groups(one, ["gpu-st-p5-1"], NETWORK) == []
    runs = vd.verify_distributed_groups(one, ["gpu-st-p5-1"], NETWORK, enabled=True)
    assert len(runs) == 1 and "one static node" in runs[0]["skip_reason"]
    two = [node("gpu-st-p5-1"), node("gpu-st-p5-2")]
    assert vd.verify_distributed_groups(two, [], NETWORK, enabled=False) == []


def test_mpi_on_gpu_nodes_and_a_figure_per_backend():
    two = [node("gpu-st-p5-1"), node("gpu-st-p5-2")]
    runs = vd.verify_distributed_groups(two, ["gpu-st-p5-1", "gpu-st-p5-2"], NETWORK, mpi_on_gpu_nodes=True,
                                        mpi_min_fraction=0.1, expected={"mpi": {"busbw": 0.5, "source": "measured"}})
    assert [r["backend"] for r in runs] == ["nccl", "mpi"]
    assert runs[0]["expected_busbw"] == 400.0
    assert (runs[1]["expected_busbw"], runs[1]["expected_source"], runs[1]["min_fraction"]) == (0.5, "measured", 0.1)


def test_unknown_gpu_count_and_unknown_bandwidth():
    nodes = [node("g-st-x-1", itype="x9.large", gpus=-1), node("g-st-x-2", itype="x9.large", gpus=-1)]
    run = vd.verify_distributed_groups(nodes, ["g-st-x-1", "g-st-x-2"], NETWORK)[0]
    assert "verify_gpus_per_instance_type" in run["skip_reason"]
    assert run["expected_busbw"] is None and "x9.large" in run["expected_source"]


def test_flexible_compute_resource_takes_the_slowest_type():
    nodes = [node("q-st-f-%d" % i, itype="p5.48xlarge,c5n.18xlarge", gpus=0) for i in (1, 2)]
    run = vd.verify_distributed_groups(nodes, [], NETWORK)[0]
    assert run["expected_busbw"] == 12.5


def test_bad_settings_are_reported_together():
    nodes = [node("gpu-st-p5-1"), node("gpu-st-p5-2")]
    with pytest.raises(AnsibleFilterError) as error:
        vd.verify_distributed_groups(nodes, [], NETWORK, nccl_min_fraction=1.5, mpi_min_fraction="x",
                                     expected={"busbw": 3, "mpi": {"busbw": 0}})
    text = str(error.value)
    assert "4 problem(s)" in text
    for fragment in ("verify_distributed_nccl_min_fraction is 1.5", "verify_distributed_mpi_min_fraction is 'x'",
                     "verify_distributed_expected has key 'busbw'", "verify_distributed_expected.mpi is {'busbw': 0}"):
        assert fragment in text
    with pytest.raises(AnsibleFilterError, match="verify_distributed_network_gbps.*p5.48xlarge: 'fast'"):
        vd.verify_network_bandwidth([], ["p5.48xlarge"], {"p5.48xlarge": "fast"})


def test_markdown_section_shows_nodes_expected_source_and_sizes():
    runs = [{"backend": "mpi", "label": "c-[1-2]", "partition": "cpu", "instance_type": "c5n.18xlarge",
             "nodes": ["c-1", "c-2"], "excluded": [], "ranks": 2, "hosts_seen": ["c-1", "c-2"], "rc": 0,
             "elapsed": 3.1, "largest_size": 16777216, "busbw_at_largest": 0.2, "peak_busbw": 0.25,
             "avg_busbw": 0.0712345, "library": "Open MPI v4.1.4",
             "expected": {"busbw": 0.5, "fraction": 0.1, "threshold": 0.05, "source": "measured by sandbox up"},
             "sizes": [{"size": 1024, "busbw_oop": 0.001, "busbw_ip": 0.002, "wrong_oop": 0, "wrong_ip": 0},
                       {"size": 16777216, "busbw_oop": 0.2, "busbw_ip": 0.19, "wrong_oop": 0, "wrong_ip": 0}]},
            {"backend": "nccl", "label": "c-[1-2]", "partition": "cpu", "instance_type": "c5n.18xlarge",
             "nodes": ["c-1", "c-2"], "not_run": "not available in the sandbox",
             "expected": {"busbw": 12.5, "fraction": 0.5, "threshold": 6.25, "source": "EC2"}}]
    text = vd.verify_distributed_markdown(runs, "distributed-training.sbatch")
    assert "## Distributed all-reduce" in text
    assert "[distributed-training.sbatch](distributed-training.sbatch)" in text
    assert "### MPI (mpi4py) on c-[1-2]" in text
    assert "figure from: measured by sandbox up" in text
    assert "| 16 MiB | 0.2 | 0.19 | 0/0 |" in text
    assert "average 0.07123 GB/s" in text
    assert "- not run: not available in the sandbox" in text
    assert vd.verify_distributed_markdown([], "x") == ""
