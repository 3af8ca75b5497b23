"""The sandbox's "AMI" layer: what a ParallelCluster AMI adds to the operating system.

Every node's root file system is this machine's Debian plus this layer plus a copy-on-write
layer of its own (rootfs.py). The layer holds what ParallelCluster (>= 3.11) ships, disabled:

- Enroot 4.1.2, laid out as its release packages install it (``/usr/bin/enroot`` and its
  helpers, ``/usr/lib/enroot``, ``/usr/share/enroot``, ``/etc/enroot`` with the Slurm hooks
  enabled as ParallelCluster's cookbook does), built from the vendored source archive;
- Pyxis 0.24.0's ``/usr/local/lib/slurm/spank_pyxis.so``, built from its vendored archive
  against this machine's Slurm headers;
- the example configs under ``/opt/parallelcluster/examples/{enroot,pyxis,spank}/``;
- ParallelCluster's node package (``aws-parallelcluster-node``, pinned in ``requirements-node.txt``) in the
  node virtualenv ``/opt/parallelcluster/pyenv/versions/<python>/envs/node_virtualenv``, and the cookbook
  virtualenv beside it (``requirements-cookbook.txt``: supervisor, boto3, PyYAML), installed from PyPI with
  this machine's ``/usr/bin/python3`` (the nodes' Python);
- ``/usr/local/sbin/shutdown``, a link to the sandbox's ``bin/shutdown`` (the nodes have no init system).

Both archives are checked against the sha256 pinned in ``VENDORED`` before anything is built.
The layer is built once per machine into the cache directory (default
``/var/cache/hpc-pcluster-sandbox``), keyed by the archives' checksums and everything else the
build depends on, so it is rebuilt only when one of those changes; ``up`` with a warm cache only
looks it up. Where the archives are missing (or do not match, or cannot be built), the layer
carries the stand-in SPANK plugin (``spank/spank_pyxis_standin.c``) and no Enroot, and says why
(``fallback``): the sandbox then reports the Enroot and Pyxis checks as not available with that
reason.

A small container image (busybox, packed with mksquashfs) is built and cached the same way;
``up`` copies it onto the cluster's shared storage.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD_SCRIPT = HERE / "ami_build.sh"
STANDIN_SOURCE = HERE / "spank" / "spank_pyxis_standin.c"
DEFAULT_CACHE_DIR = Path("/var/cache/hpc-pcluster-sandbox")
VENDOR_DIR_ENV = "HPC_PCLUSTER_VENDOR_DIR"
CACHE_DIR_ENV = "HPC_PCLUSTER_SANDBOX_CACHE"
NODE_REQUIREMENTS = HERE / "requirements-node.txt"
COOKBOOK_REQUIREMENTS = HERE / "requirements-cookbook.txt"
NODE_PYTHON = "/usr/bin/python3"
# Where each running sandbox registers (sandbox.py's Registry): the layers they use are kept.
REGISTRY_DIR = Path("/run/hpc-pcluster-sandbox")
# Version of the layout below; bump it when the layer's content changes without a new archive.
LAYER_FORMAT = 2

# Pinned upstream source archives (unmodified `git archive` of the tags).
VENDORED = {
    "enroot": {"version": "4.1.2", "archive": "enroot-4.1.2.tar.gz",
               "sha256": "817e8d551135e6f3fc311d1ee57b03fb4d30325acba732f8dea43069ca11f8d3"},
    "pyxis": {"version": "0.24.0", "archive": "pyxis-0.24.0.tar.gz",
              "sha256": "063653ba39125ac29796cc6079701d1ec34dd4c5baf698efacc0f36bf3619681"},
}
# Tools the real chain's build needs beyond make setup's compiler (Debian package in brackets).
BUILD_TOOLS = {"musl-gcc": "musl-tools", "makeself": "makeself", "readelf": "binutils"}
IMAGE_TOOLS = {"mksquashfs": "squashfs-tools", "/bin/busybox": "busybox-static"}
# Debian's AWS CLI (awscli): the layer links ParallelCluster's /usr/local/bin/aws to it.
AWS_CLI = "/usr/bin/aws"

EXAMPLES = {
    "enroot/enroot.conf": """\
# Example Enroot configuration shipped with AWS ParallelCluster AMIs.
# To enable Enroot, copy this file to /etc/enroot/enroot.conf.
ENROOT_RUNTIME_PATH        /run/enroot/user-$(id -u)
ENROOT_CACHE_PATH          ${ENROOT_TEMP_PATH}/enroot-cache/group-$(id -g)
ENROOT_DATA_PATH           ${ENROOT_TEMP_PATH}/enroot-data/user-$(id -u)
ENROOT_TEMP_PATH           /tmp
ENROOT_SQUASH_OPTIONS      -noI -noD -noF -noX -no-duplicates
ENROOT_MOUNT_HOME          y
ENROOT_RESTRICT_DEV        y
ENROOT_ROOTFS_WRITABLE     y
""",
    "spank/plugstack.conf": "include /opt/slurm/etc/plugstack.conf.d/*\n",
    "pyxis/pyxis.conf": "required /usr/local/lib/slurm/spank_pyxis.so runtime_path=/run/pyxis\n",
}
# The nodes have no init system: their shutdown asks the sandbox's hypervisor to power the instance off.
LINKS = {"usr/local/sbin/shutdown": "/run/sandbox/bin/shutdown"}
# The top-level directories the layer provides to the nodes' overlays (rootfs.LAYERED).
LAYER_DIRS = ("usr", "usr/local", "etc", "opt")
# What the layer hides of this machine's own files (overlayfs whiteouts): settings of this machine's container
# image that no EC2 AMI has. docker-clean turns off apt's binary caches (and deletes them after every dpkg run), so
# every apt, apt-mark and python-apt call on a node parsed the whole package lists again (0.9 s of CPU where the
# cache takes 0.2 s).
HIDDEN = ("etc/apt/apt.conf.d/docker-clean",)


class AmiError(Exception):
    """A setting that cannot work (e.g. a cache directory inside a layered path)."""


def default_vendor_dir() -> Path:
    """``../shared/vendor`` next to the checkout; for a git worktree, next to its main checkout too."""
    candidates = [ROOT.parent / "shared" / "vendor"]
    common = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--path-format=absolute", "--git-common-dir"],
                            capture_output=True, text=True, check=False).stdout.strip()
    if common:
        candidates.append(Path(common).parent.parent / "shared" / "vendor")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return candidates[0]


def vendor_dir(setting: str | None) -> Path:
    value = setting or os.environ.get(VENDOR_DIR_ENV)
    return Path(value).resolve() if value else default_vendor_dir()


def cache_dir(setting: str | None) -> Path:
    path = Path(setting or os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR).resolve()
    for layered in ("/usr", "/etc", "/opt", "/var/lib", "/var/spool"):
        if path == Path(layered) or Path(layered) in path.parents:
            raise AmiError(f"the sandbox cache directory {path} lies inside {layered}, which the nodes see through "
                           f"the layer built there (overlayfs refuses overlapping layers): use a directory elsewhere, "
                           f"e.g. --cache-dir {DEFAULT_CACHE_DIR} or {CACHE_DIR_ENV}")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _missing_tools(tools: dict) -> list:
    return [f"{tool} ({package})" for tool, package in tools.items()
            if not (os.access(tool, os.X_OK) if tool.startswith("/") else shutil.which(tool))]


def check_archives(vendor: Path) -> tuple[dict, str]:
    """The vendored archives that match their pins, or ({}, why not)."""
    if not vendor.is_dir():
        return {}, (f"the vendored source archives are not in {vendor} (set --vendor-dir or {VENDOR_DIR_ENV} "
                    f"to the directory holding {', '.join(v['archive'] for v in VENDORED.values())})")
    found = {}
    problems = []
    for name, pin in VENDORED.items():
        path = vendor / pin["archive"]
        if not path.is_file():
            problems.append(f"{path} is missing")
            continue
        seen = sha256_of(path)
        if seen != pin["sha256"]:
            problems.append(f"{path} has sha256 {seen}, expected {pin['sha256']} (not built)")
            continue
        found[name] = path
    if problems:
        return {}, "; ".join(problems)
    missing = _missing_tools(BUILD_TOOLS)
    if missing:
        return {}, f"building Enroot needs {', '.join(missing)}: run `make setup`"
    return found, ""


def inputs_key(parts: list) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else str(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _slurm_headers_id() -> bytes:
    version = Path("/usr/include/slurm/slurm_version.h")
    return version.read_bytes() if version.exists() else b"no slurm headers"


class Cache:
    """The machine-wide cache, locked while it is read or written (several `up`s may run at once)."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = None

    def __enter__(self):
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o755)
        self.fd = os.open(self.path, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def run_build(args: list, log_file: Path) -> None:
    with open(log_file, "ab") as log:
        log.write(f"\n$ {BUILD_SCRIPT.name} {' '.join(str(a) for a in args)}\n".encode())
        log.flush()
        proc = subprocess.run(["/bin/sh", str(BUILD_SCRIPT), *[str(a) for a in args]], stdout=log,
                              stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT.name} {args[0]} failed (exit {proc.returncode}); see {log_file}")


def node_python_version() -> str:
    """The version of the nodes' Python (this machine's /usr/bin/python3), which names the virtualenvs' directory."""
    return subprocess.run([NODE_PYTHON, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def virtualenvs(version: str) -> dict:
    """Where the nodes see ParallelCluster's virtualenvs (the cookbook's node_virtualenv_path and cookbook_virtualenv_path)."""
    envs = f"/opt/parallelcluster/pyenv/versions/{version}/envs"
    return {"node": f"{envs}/node_virtualenv", "cookbook": f"{envs}/cookbook_virtualenv"}


def _write_extras(layer: Path, extras: dict) -> None:
    """Files (bytes) and symbolic links (str: the link's target) added to the layer, by path in it."""
    for rel, content in sorted(extras.items()):
        path = layer / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.symlink_to(content)
        else:
            path.write_bytes(content)
            path.chmod(0o644)


def _ensure_venvs(cache: Path, log_file: Path, log) -> Path:
    """The /opt tree of ParallelCluster's node and cookbook virtualenvs, built from PyPI once per machine for
    their inputs and shared by every layer (real or stand-in chain); the caller holds the cache's lock."""
    key = inputs_key([LAYER_FORMAT, BUILD_SCRIPT.read_bytes(), NODE_REQUIREMENTS.read_bytes(),
                      COOKBOOK_REQUIREMENTS.read_bytes(), node_python_version()])
    target = cache / "venvs" / f"venvs-{key}"
    if not (target / "done").exists():
        staging = target.with_name(target.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        log(f"building ParallelCluster's node package and cookbook virtualenvs once for this machine, from PyPI "
            f"(log {log_file})")
        started = time.monotonic()
        run_build(["venvs", NODE_REQUIREMENTS, COOKBOOK_REQUIREMENTS, staging], log_file)
        (staging / "done").write_text("")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        log(f"virtualenvs built in {time.monotonic() - started:.1f} s: {target}")
        prune(target.parent, "venvs-", {target.name})
    return target / "opt"


def _build_layer(target: Path, archives: dict, log_file: Path, extras: dict, venvs: Path) -> None:
    staging = target.with_name(target.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    layer = staging / "layer"
    for sub in LAYER_DIRS + ("etc/enroot",):
        (layer / sub).mkdir(parents=True, exist_ok=True)
    if archives:
        run_build(["enroot", archives["enroot"], layer], log_file)
        run_build(["pyxis", archives["pyxis"], layer], log_file)
    else:
        run_build(["standin", STANDIN_SOURCE, layer], log_file)
    # The virtualenvs, hard-linked (a layer is never written to: the nodes' overlays copy up what they change).
    subprocess.run(["cp", "-al", str(venvs), str(layer)], check=True)
    for rel, text in EXAMPLES.items():
        path = layer / "opt" / "parallelcluster" / "examples" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    _write_extras(layer, extras)
    for rel in HIDDEN:
        (layer / rel).parent.mkdir(parents=True, exist_ok=True)
        os.mknod(layer / rel, 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    info = {"enroot": VENDORED["enroot"]["version"] if archives else None,
            "pyxis": VENDORED["pyxis"]["version"] if archives else "stand-in",
            "python": node_python_version(),
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (staging / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def prune(directory: Path, prefix: str, keep: set) -> None:
    """Remove cached builds of the same kind (name prefix) for other inputs that no running sandbox uses."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.name.startswith(prefix) and entry.name not in keep:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def running_layers(registry: Path = REGISTRY_DIR) -> set:
    """The keys of the AMI layers the sandboxes running on this machine use (never pruned)."""
    keys = set()
    for entry in registry.glob("instance-*.json") if registry.is_dir() else ():
        try:
            state_dir = Path(json.loads(entry.read_text()).get("state_dir", "/nonexistent"))
            state = json.loads((state_dir / "state.json").read_text())
        except (OSError, ValueError, AttributeError):
            continue
        key = ((state.get("containers") or {}).get("ami") or {}).get("key")
        if key:
            keys.add(key)
    return keys


def ami_tools() -> dict:
    """What else the layer carries of a ParallelCluster AMI: the AWS CLI at /usr/local/bin/aws, where
    ParallelCluster's cookbook installs it (here Debian's awscli, when this machine has it), and LINKS."""
    return dict(LINKS, **({"usr/local/bin/aws": AWS_CLI} if os.access(AWS_CLI, os.X_OK) else {}))


def ensure_layer(vendor: Path, cache: Path, log_file: Path, in_use=running_layers, log=print, extras=None) -> dict:
    """The AMI layer for these inputs, built first when the cache does not have it. extras: more files
    (bytes) and links (str) by their path in the layer, e.g. the sandbox CA in the trust store.
    in_use: called when a build prunes the cache, returns the keys of the layers running sandboxes use
    (read then, under the cache's lock, so that a sandbox started meanwhile keeps its layer); by default
    running_layers, so that no caller can prune a layer under a running sandbox.

    Returns {"path", "key", "enroot", "pyxis", "real", "fallback", "built"}; "fallback" says why the
    real chain is not there ("" when it is), "built" whether this call built it."""
    archives, fallback = check_archives(vendor)
    extras = dict(ami_tools(), **(extras or {}))
    try:
        return _ensure_layer(archives, vendor, cache, log_file, in_use, log, extras) | {"fallback": fallback}
    except RuntimeError as exc:
        if not archives:
            raise
        log(f"the real container chain could not be built ({exc}); using the stand-ins")
        return _ensure_layer({}, vendor, cache, log_file, in_use, log, extras) | {
            "fallback": f"building Enroot/Pyxis from {vendor} failed: {exc}"}


def _ensure_layer(archives: dict, vendor: Path, cache: Path, log_file: Path, in_use, log, extras: dict) -> dict:
    parts = [LAYER_FORMAT, BUILD_SCRIPT.read_bytes(), json.dumps(EXAMPLES, sort_keys=True), _slurm_headers_id(), HIDDEN,
             NODE_REQUIREMENTS.read_bytes(), COOKBOOK_REQUIREMENTS.read_bytes(), node_python_version()]
    parts += [f"{rel}={hashlib.sha256(c.encode() if isinstance(c, str) else c).hexdigest()}" for rel, c in sorted(extras.items())]
    parts += [VENDORED[n]["sha256"] for n in sorted(archives)] if archives else [STANDIN_SOURCE.read_bytes()]
    key = ("real-" if archives else "standin-") + inputs_key(parts)
    with Cache(cache):
        target = cache / "ami" / key
        built = False
        if not (target / "info.json").exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            what = (f"Enroot {VENDORED['enroot']['version']} and Pyxis {VENDORED['pyxis']['version']} from {vendor}"
                    if archives else "the stand-in SPANK plugin")
            venvs = _ensure_venvs(cache, log_file, log)
            log(f"building the AMI layer once for this machine: {what} (log {log_file})")
            started = time.monotonic()
            _build_layer(target, archives, log_file, extras, venvs)
            log(f"AMI layer built in {time.monotonic() - started:.1f} s: {target}")
            built = True
            prune(target.parent, key.split("-", 1)[0] + "-", set(in_use()) | {key})
        info = json.loads((target / "info.json").read_text())
    return {"path": str(target / "layer"), "key": key, "enroot": info["enroot"], "pyxis": info["pyxis"],
            "real": bool(archives), "built": built, "virtualenvs": virtualenvs(info["python"])}


def ensure_image(cache: Path, log_file: Path, log=print) -> tuple[str | None, str]:
    """The busybox squashfs image (path, "") or (None, why not)."""
    missing = _missing_tools(IMAGE_TOOLS)
    if missing:
        return None, f"building the container image needs {', '.join(missing)}: run `make setup`"
    key = inputs_key([LAYER_FORMAT, BUILD_SCRIPT.read_bytes(), sha256_of(Path("/bin/busybox"))])
    with Cache(cache):
        image = cache / "images" / f"busybox-{key}.sqsh"
        if not image.exists():
            image.parent.mkdir(parents=True, exist_ok=True)
            log(f"building the container image once for this machine: {image.name}")
            run_build(["image", image], log_file)
            prune(image.parent, "busybox-", {image.name})
    return str(image), ""


def _ami_hook_links(directory: str, names: list) -> list:
    """The links to extra hooks the AMI layer enables in etc/enroot/hooks.d (a copytree ignore function)."""
    return [n for n in names if directory.endswith("etc/enroot/hooks.d") and os.path.islink(os.path.join(directory, n))]


def enroot_deb(layer: Path, out_dir: Path) -> Path:
    """Pack the layer's Enroot tree as a Debian package, as its release packages lay it out
    (for the enroot role's package path)."""
    version = VENDORED["enroot"]["version"]
    staging = out_dir / f".enroot-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    for rel in ("usr/bin", "usr/lib/enroot", "usr/share/enroot", "etc/enroot"):
        target = staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel == "usr/bin":
            target.mkdir()
            for tool in (layer / rel).glob("enroot*"):
                shutil.copy2(tool, target / tool.name)
        else:
            # Without the links the AMI adds in /etc/enroot/hooks.d (ami_build.sh): the release packages enable
            # no extra hook, and whoever installs them (the enroot role) links what it wants.
            shutil.copytree(layer / rel, target, symlinks=True, ignore=_ami_hook_links)
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    (staging / "DEBIAN").mkdir()
    (staging / "DEBIAN" / "control").write_text(
        f"Package: enroot\nVersion: {version}-1\nArchitecture: {arch}\nMaintainer: hpc.pcluster sandbox <root@localhost>\n"
        "Depends: bash, squashfs-tools\nSection: utils\nPriority: optional\n"
        f"Description: Enroot {version}, built by the hpc.pcluster sandbox from the vendored source archive\n")
    (staging / "DEBIAN" / "conffiles").write_text(
        "".join(f"/{p.relative_to(staging)}\n" for p in sorted((staging / "etc").rglob("*")) if p.is_file() and not p.is_symlink()))
    deb = out_dir / f"enroot_{version}-1_{arch}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(staging), str(deb)], capture_output=True, check=True)
    shutil.rmtree(staging)
    return deb


def main(argv=None) -> int:
    """pins: the pinned archives (JSON); enroot-deb DIR: the real layer's Enroot as a .deb in DIR."""
    import argparse
    parser = argparse.ArgumentParser(prog="ami.py", description=main.__doc__)
    parser.add_argument("command", choices=["pins", "enroot-deb"])
    parser.add_argument("out_dir", nargs="?")
    parser.add_argument("--vendor-dir")
    parser.add_argument("--cache-dir")
    args = parser.parse_args(argv)
    vendor = vendor_dir(args.vendor_dir)
    if args.command == "pins":
        print(json.dumps({name: dict(pin, path=str(vendor / pin["archive"])) for name, pin in VENDORED.items()}))
        return 0
    out = Path(args.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache = cache_dir(args.cache_dir)
    # Any real layer holds the same Enroot tree (its key differs by the sandbox's other extras): a layer
    # already built is packed as it is; a build prunes only what no running sandbox uses.
    built = sorted((cache / "ami").glob("real-*/info.json"), key=lambda p: p.stat().st_mtime)
    layer_dir = (built[-1].parent / "layer") if built else None
    if layer_dir is None:
        layer = ensure_layer(vendor, cache, out / "ami-build.log", log=lambda msg: print(msg, file=sys.stderr))
        if not layer["real"]:
            print(f"no Enroot to package: {layer['fallback']}", file=sys.stderr)
            return 1
        layer_dir = Path(layer["path"])
    deb = enroot_deb(layer_dir, out)
    print(json.dumps({"path": str(deb), "name": deb.name, "sha256": sha256_of(deb)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
