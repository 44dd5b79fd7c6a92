"""Installing a Debian package a test needs, safely from several processes at once.

Why: the suite runs on two xdist workers, and the browser tests (chromium) and the C# tests
(mono) each install their package when it is missing. Two ``apt-get`` processes at once fail
on apt's lock (``Could not get lock /var/lib/apt/lists/lock``, exit 100), which failed a CI
run. So every install here holds one file lock for the whole update + install, waits for an
apt run outside the suite too (``DPkg::Lock::Timeout``), and retries a failed update.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

#: One lock for every test process of this machine (apt's own lock is machine-wide too).
LOCK = Path("/tmp/edgeflow-tests-apt.lock")
#: Seconds an apt-get call waits for a lock held by an apt run outside the suite.
APT_LOCK_WAIT = 600


def apt_install(packages: list[str], binaries: list[str]) -> None:
    """Install ``packages`` with apt-get unless every one of ``binaries`` is already on PATH.

    Skips when not root (the developer's machine); fails when there is no apt-get. Another
    process may have installed them while this one waited for the lock: checked again then.
    """
    if all(shutil.which(b) for b in binaries):
        return
    if os.geteuid() != 0:
        pytest.skip(f"{' '.join(packages)} missing and apt-get needs root to install them")
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.fail(f"{' '.join(binaries)} missing and this system has no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT}"]
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if all(shutil.which(b) for b in binaries):
                return
            for attempt in range(3):
                done = subprocess.run([apt, *wait, "update", "-q"], env=env, timeout=900)
                if done.returncode == 0:
                    break
                if attempt == 2:
                    pytest.fail(f"apt-get update failed ({done.returncode}) three times")
                time.sleep(10)
            subprocess.run(
                [apt, *wait, "install", "-y", "-q", "--no-install-recommends", *packages],
                check=True,
                env=env,
                timeout=1800,
            )
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    missing = [b for b in binaries if not shutil.which(b)]
    if missing:
        pytest.fail(f"apt-get installed {' '.join(packages)} but {missing} is not on PATH")
