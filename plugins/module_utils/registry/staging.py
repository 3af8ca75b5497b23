# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container images staged once on shared storage, named by their digest.

In the staging directory (``/fsx/containers`` by default), for each image digest::

    sha256-<hex>.sqsh     the image, imported once with Enroot (0644: every user's jobs read it)
    sha256-<hex>.json     its record: digest, the images it was staged for, when, how long the import took

and for each image reference, a stable name jobs use (``staged_name``)::

    <name>.sqsh -> sha256-<hex>.sqsh     moved atomically when the tag points at a new digest
    <name>.json                          the reference and its digests, newest first

A digest already there is not imported again. When a name moves to a new digest, digests that no name
keeps any more (each keeps its newest ``keep + 1``) are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time

LOCK = ".hpc-pcluster-stage.lock"


def staged_name(reference):
    """The stable file name of an image reference (from parse_reference): registry, repository and tag."""
    text = "%s/%s:%s" % (reference["registry"], reference["repository"], reference["tag"] or reference["digest"])
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) + ".sqsh"


def digest_name(digest):
    return digest.replace(":", "-") + ".sqsh"


def record_path(directory, file_name):
    return os.path.join(directory, file_name[:-len(".sqsh")] + ".json")


def read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


def write_json(path, data):
    """Written whole or not at all (a temporary file renamed)."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


@contextlib.contextmanager
def locked(directory):
    """One staging at a time in directory (several controllers, or a retry while one still runs)."""
    fd = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def current_digest(directory, name):
    """The digest a stable name points at now, or None."""
    try:
        target = os.readlink(os.path.join(directory, name))
    except OSError:
        return None
    match = re.match(r"^(sha256)-([0-9a-f]{64})\.sqsh$", target)
    return "%s:%s" % match.groups() if match else None


def plan(directory, name, digest):
    """What staging digest under name would do: {"import": bool, "link": bool}."""
    return {"import": not os.path.isfile(os.path.join(directory, digest_name(digest))),
            "link": current_digest(directory, name) != digest}


def record_import(directory, digest, image, seconds):
    """The digest's record after an import (or with one more image naming it)."""
    path = record_path(directory, digest_name(digest))
    record = read_json(path) or {"digest": digest, "images": [], "imported_at": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "import_seconds": round(seconds, 2)}
    if image not in record["images"]:
        record["images"].append(image)
    record["size"] = os.path.getsize(os.path.join(directory, digest_name(digest)))
    write_json(path, record)
    return record


def point(directory, name, digest, image, keep):
    """Move the stable name to digest (atomically) and remove the digests no name keeps. Returns the removed."""
    link = os.path.join(directory, name)
    tmp = "%s.tmp-%d" % (link, os.getpid())
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(digest_name(digest), tmp)
    os.rename(tmp, link)
    history = (read_json(record_path(directory, name)) or {}).get("digests", [])
    history = [digest] + [d for d in history if d != digest]
    write_json(record_path(directory, name), {"image": image, "digests": history[:keep + 1]})
    return prune(directory, set(history[keep + 1:]))


def prune(directory, candidates):
    """Remove the candidate digests that no name's record keeps."""
    kept = set()
    for entry in os.listdir(directory):
        if entry.endswith(".json") and not entry.startswith("sha256-"):
            kept.update((read_json(os.path.join(directory, entry)) or {}).get("digests", []))
    removed = []
    for digest in sorted(candidates - kept):
        for path in (os.path.join(directory, digest_name(digest)), record_path(directory, digest_name(digest))):
            if os.path.exists(path):
                os.unlink(path)
        removed.append(digest)
    return removed
