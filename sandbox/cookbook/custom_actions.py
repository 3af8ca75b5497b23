"""A node's custom actions (OnNodeStart, OnNodeConfigured), run as ParallelCluster's executor runs them.

On AWS the bootstrap runs ``fetch_and_run -preinstall`` and ``-postinstall``: the cookbook's
``custom_action_executor.py`` takes the node's ``CustomActions`` (the queue's for a compute node, the head
node's for the head node) from the cluster config, downloads every script first (``s3://`` with the node's
instance role through boto3, ``https://``), then runs them one after the other as root, each with its
``Args`` and the bootstrap's environment plus the cfnconfig-compatible ``cfn_<event>`` and
``cfn_<event>_args`` variables. The first download or script that fails fails the bootstrap, with its
message in ``/var/log/parallelcluster/bootstrap_error_msg``.

This runs inside the node, with the node's credentials: the same steps, messages and files, taken from the
executor's source as facts.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
import urllib.request
from urllib.parse import urlparse

BOOTSTRAP_ERROR_FILE = "/var/log/parallelcluster/bootstrap_error_msg"
LEGACY_NAMES = {"OnNodeStart": "preinstall", "OnNodeConfigured": "postinstall"}
HTTPS_TIMEOUT = 60


class ActionFailed(Exception):
    """A download or a script that failed: the node's bootstrap fails."""

    def __init__(self, message: str, stage: str, step: int):
        super().__init__(message)
        self.stage, self.step = stage, step


def sequence(config: dict, event: str, queue: str | None) -> list:
    """[(url, [args])] of one event's actions: the queue's (queue given) or the head node's."""
    if queue is None:
        owner = config.get("HeadNode") or {}
    else:
        owner = next((q for q in (config.get("Scheduling") or {}).get("SlurmQueues") or [] if q.get("Name") == queue), {})
    actions = ((owner.get("CustomActions") or {}).get(event)) or {}
    steps = actions.get("Sequence") if actions.get("Sequence") else ([actions] if actions.get("Script") else [])
    return [(step["Script"], [str(arg) for arg in step.get("Args") or []]) for step in steps]


def _download(event: str, step: int, url: str, s3, directory: str) -> str:
    scheme = urlparse(url).scheme
    path = os.path.join(directory, f"{step}-{os.path.basename(urlparse(url).path) or 'script'}")
    if scheme == "s3":
        parsed = urlparse(url)
        try:
            s3.download_file(parsed.netloc, parsed.path.lstrip("/"), path)
        except Exception as err:  # pylint: disable=broad-except  # botocore's errors, credentials included
            raise ActionFailed(f"Failed to download {event} script {step} {url} using aws s3, cause: {err}.",
                               "downloading", step) from err
    elif scheme == "https":
        try:
            with urllib.request.urlopen(url, timeout=HTTPS_TIMEOUT) as response:  # noqa: S310 (https only)
                body = response.read()
        except OSError as err:
            raise ActionFailed(f"Failed to download {event} script {step} {url}, cause: {err}.", "downloading", step) from err
        with open(path, "wb") as handle:
            handle.write(body)
    else:
        raise ActionFailed(f"Failed to download {event} script {step} {url}, URL must be an s3 or HTTPs.",
                           "downloading", step)
    os.chmod(path, 0o755)
    return path


def _env(event: str, url: str, args: list) -> dict:
    legacy = LEGACY_NAMES[event]
    env = dict(os.environ)
    env[f"cfn_{legacy}"] = f'"{url}"'
    env[f"cfn_{legacy}_args"] = "(" + " ".join(f'"{arg}"' for arg in args) + ")"
    return env


def run(event: str, steps: list, s3, log) -> list:
    """Download every script of steps, then run them in order. Returns [{url, seconds}]; raises ActionFailed
    at the first failure. log(text): where the scripts' output goes (the node's bootstrap log)."""
    done = []
    with tempfile.TemporaryDirectory(prefix="custom-actions-") as directory:
        paths = [_download(event, step, url, s3, directory) for step, (url, _args) in enumerate(steps, 1)]
        for step, ((url, args), path) in enumerate(zip(steps, paths), 1):
            log(f"--- {time.strftime('%H:%M:%S')} {event} step {step}: {url} {shlex.join(args)}")
            started = time.monotonic()
            proc = subprocess.run([path, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  env=_env(event, url, args), check=False)
            log(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                raise ActionFailed(f"Failed to execute {event} script {step} {url}, return code: {proc.returncode}.",
                                   "executing", step)
            done.append({"url": url, "seconds": round(time.monotonic() - started, 2)})
    return done


def write_error(message: str) -> None:
    """The bootstrap's failure, where ParallelCluster leaves it."""
    os.makedirs(os.path.dirname(BOOTSTRAP_ERROR_FILE), exist_ok=True)
    with open(BOOTSTRAP_ERROR_FILE, "w", encoding="utf-8") as handle:
        handle.write(message + "\n")
