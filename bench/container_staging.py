"""Starting a container job on 1, 2 and 4 compute nodes: every node pulling the image from the registry, against
every node starting the squashfs staged once on shared storage.

One sandbox with 4 compute nodes (or --state-dir of a running one with at least 4): playbooks/containers.yml sets
Enroot and Pyxis up (Docker left out), an image of --size-mb (busybox plus one layer of random bytes, which no
compression shrinks) is pushed to the sandbox's registry under ECR's name, and staged once on /fsx/containers with
playbooks/stage_images.yml (as deploy.yml stages enroot_stage_images). Then, for each size N and each of --runs
rounds:

- registry: `srun -N N --container-image=<registry>/<repository>:<tag> true`, Enroot's layer cache emptied first,
  so every node downloads, decompresses and packs the image itself (the nodes share the cache directory on /fsx,
  as the enroot role lays it out; emptied, concurrent pulls download in parallel);
- staged:   `srun -N N --container-image=/fsx/containers/<name>.sqsh true`: no node pulls, each starts from the
  same file.

Prints the staging's import time, each size's medians and the ratio registry / staged. Every sandbox node shares
this machine's cores and its disk: on a 2-core machine N nodes doing the same work take about N/2 times as long as
one, on a cluster each node has its own. The registry's transfer is over the nodes' veth network.

Usage: .venv/bin/python bench/container_staging.py [--sizes 1,2,4] [--runs 2] [--size-mb 128] [--state-dir DIR]
"""

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "sandbox"))

import registry  # noqa: E402  pylint: disable=import-error,wrong-import-position
from env_file import controller_env  # noqa: E402  pylint: disable=import-error,wrong-import-position

PY = ROOT / ".venv" / "bin" / "python"
SANDBOX = ROOT / "sandbox" / "sandbox.py"
REPOSITORY = "hpc-pcluster/bench"


def run(argv, **kwargs):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        sys.exit("%s failed (rc %s):\n%s%s" % (" ".join(map(str, argv[:6])), proc.returncode,
                                               proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc.stdout


def playbook(state_dir, path, extra):
    return run(["ansible-playbook", "-i", str(state_dir / "inventory"), str(path), "-e", json.dumps(extra)],
               cwd=str(ROOT), env=controller_env(state_dir))


def head(state, *argv):
    """argv on the head node as root logged in there runs it: with a login environment, not this process's (srun
    hands its environment to the job)."""
    return run(["nsenter", "-t", str(state["holders"]["head"]), "-a", "--", "env", "-i", "HOME=/root", "LANG=C.UTF-8",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *argv])


def bench_image(work, size_mb):
    """busybox plus a layer of size_mb random bytes, as an OCI layout."""
    layout, bundle = work / "oci", work / "bundle"
    run(["umoci", "init", "--layout", str(layout)])
    run(["umoci", "new", "--image", "%s:bench" % layout])
    run(["umoci", "unpack", "--image", "%s:bench" % layout, str(bundle)])
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "true"):
        os.symlink("busybox", rootfs / "bin" / applet)
    with open(rootfs / "payload", "wb") as out:
        for _block in range(size_mb):
            out.write(os.urandom(1 << 20))
    run(["umoci", "repack", "--image", "%s:bench" % layout, str(bundle)])
    run(["umoci", "config", "--image", "%s:bench" % layout, "--config.env", "PATH=/bin", "--os", "linux",
         "--architecture", run(["dpkg", "--print-architecture"]).strip()])
    return "oci:%s:bench" % layout


def cache_dir(state):
    """ENROOT_CACHE_PATH as root sees it (from the enroot.conf the role wrote)."""
    for line in head(state, "cat", "/etc/enroot/enroot.conf").splitlines():
        if line.startswith("ENROOT_CACHE_PATH"):
            return head(state, "sh", "-c", "eval echo \"$0\"", line.split(None, 1)[1]).strip()
    sys.exit("no ENROOT_CACHE_PATH in the head node's enroot.conf")


def timed_job(state, nodes, image):
    argv = ["srun", "--quiet", "--nodes=%d" % len(nodes), "--ntasks-per-node=1", "--nodelist=%s" % ",".join(nodes),
            "--container-image=%s" % image, "true"]
    started = time.monotonic()
    head(state, *argv)
    return time.monotonic() - started


def prepare(state_dir, state, work, size_mb):
    """Enroot and Pyxis on the nodes, the image pushed and staged: (image, staged path, import seconds)."""
    playbook(state_dir, ROOT / "playbooks" / "containers.yml",
             {"containers_docker_enabled": False, "enroot_stage_images": []})
    ends = state["containers"]["registry"]
    tag = "%dm-%d" % (size_mb, int(time.time()))
    registry.push(state_dir, state["holders"]["head"], ends, registry.password_of(state), bench_image(work, size_mb),
                  "%s:%s" % (REPOSITORY, tag))
    image = "%s/%s:%s" % (ends["registry_host"], REPOSITORY, tag)
    playbook(state_dir, ROOT / "playbooks" / "stage_images.yml", {"enroot_stage_images": [image]})
    name = "%s_%s_%s.sqsh" % (ends["registry_host"], REPOSITORY.replace("/", "_"), tag)
    record = json.loads(head(state, "cat", "/fsx/containers/%s.json" % name[:-len(".sqsh")]))
    imported = json.loads(head(state, "cat", "/fsx/containers/%s.json" % record["digests"][0].replace(":", "-")))
    return image, "/fsx/containers/" + name, imported["import_seconds"]


def measure(state, nodes, image, staged, runs):
    cache = cache_dir(state)
    times = {"registry": [], "staged": []}
    for _round in range(runs):
        head(state, "sh", "-c", 'rm -rf "$0"/*', cache)
        times["registry"].append(timed_job(state, nodes, image))
        times["staged"].append(timed_job(state, nodes, staged))
    return {k: statistics.median(v) for k, v in times.items()}


@contextlib.contextmanager
def bench_sandbox(prefix, state_dir, up_args):
    """(work directory, sandbox state directory): state_dir when given (a running sandbox, left running), else a
    sandbox of the bench's own brought up with `up up_args` and brought down afterwards."""
    work = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    state_dir = pathlib.Path(state_dir).resolve() if state_dir else None
    own = work / "sandbox"
    try:
        if state_dir is None:
            run([str(PY), str(SANDBOX), "up", "--state-dir", str(own), *up_args])
        yield work, state_dir or own
    finally:
        if state_dir is None:
            subprocess.run([str(PY), str(SANDBOX), "down", "--state-dir", str(own)], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="1,2,4")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--size-mb", type=int, default=128)
    parser.add_argument("--state-dir", help="a running sandbox with enough compute nodes (default: one of its own)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with bench_sandbox("hpc-pcluster-bench-staging-", args.state_dir,
                       ["--compute-nodes", str(max(sizes))]) as (work, state_dir):
        state = json.loads((state_dir / "state.json").read_text())
        if state["containers"]["registry"].get("note"):
            sys.exit("the sandbox has no registry: %s" % state["containers"]["registry"]["note"])
        image, staged, import_seconds = prepare(state_dir, state, work, args.size_mb)
        print("image: %s (%d MiB of random bytes on busybox)" % (image, args.size_mb))
        print("staged once on shared storage in %.1f s: %s" % (import_seconds, staged))
        print("\n%5s  %14s  %14s  %22s" % ("nodes", "registry (s)", "staged (s)", "ratio registry/staged"))
        for size in sizes:
            medians = measure(state, state["compute_nodes"][:size], image, staged, args.runs)
            print("%5d  %14.1f  %14.1f  %22.1f" % (
                size, medians["registry"], medians["staged"], medians["registry"] / medians["staged"]))
        print("\nmedians of %d run(s) each, Enroot's layer cache emptied before each registry run" % args.runs)


if __name__ == "__main__":
    main()
