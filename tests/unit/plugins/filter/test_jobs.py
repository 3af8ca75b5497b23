"""filter/jobs: the unfinished Slurm jobs as a table."""

from ansible_collections.hpc.pcluster.plugins.filter import jobs


def test_jobs_line_up_under_their_header():
    lines = ["22|RUNNING|alice|compute-gpu|train-llm|compute-gpu-st-distributed-ml-1",
             "23|PENDING|bob|compute-gpu|eval|"]
    assert jobs.slurm_job_table(lines) == [
        "JOBID  STATE    USER   PARTITION    NAME       NODES",
        "22     RUNNING  alice  compute-gpu  train-llm  compute-gpu-st-distributed-ml-1",
        "23     PENDING  bob    compute-gpu  eval"]


def test_a_job_name_with_a_bar_stays_whole():
    assert jobs.job_fields("7|RUNNING|root|q|a|b|node-1") == ["7", "RUNNING", "root", "q", "a|b", "node-1"]
    assert jobs.job_fields("7|PENDING") == ["7", "PENDING", "", "", "", ""]
