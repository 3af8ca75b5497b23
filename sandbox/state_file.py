"""A sandbox's state.json and the hypervisor's node records, read and changed by several processes at once.

``sandbox.py up`` writes state.json while it starts the sandbox; from then on the hypervisor (hypervisor.py)
changes the parts that follow the nodes (``holders``, ``compute_ips``). Every change is a read-modify-write
under an exclusive lock on ``<state>/state.lock``, and files are replaced atomically (readers never see half).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from pathlib import Path

STATE = "state.json"
NODES = "nodes.json"


def load(state_dir: Path, name: str = STATE):
    try:
        return json.loads((Path(state_dir) / name).read_text())
    except (OSError, ValueError):
        return None


def save(state_dir: Path, data: dict, name: str = STATE) -> None:
    path = Path(state_dir) / name
    tmp = path.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


@contextlib.contextmanager
def locked(state_dir: Path):
    fd = os.open(Path(state_dir) / "state.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def update(state_dir: Path, change, name: str = STATE) -> dict:
    """Apply change(data) (it edits the dict in place) to one file under the lock; returns the new content."""
    with locked(state_dir):
        data = load(state_dir, name) or {}
        change(data)
        save(state_dir, data, name)
        return data
