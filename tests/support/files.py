"""Files and folders made read-only for real, even for root (tests run as root in CI boxes).

As root, permission bits are ignored (CAP_DAC_OVERRIDE), so `chmod 444` proves nothing: root
gets `chattr +i` (immutable: no write, no new entry in a folder, for root too); anyone else gets
chmod. Always undo with `make_writable` (pytest cannot delete an immutable tmp_path). Where
root cannot set the flag (a file system without it, no CAP_LINUX_IMMUTABLE) the test is skipped
with that reason: nothing else makes a file read-only for root.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def make_read_only(path: Path) -> None:
    if os.geteuid() == 0:
        try:
            subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as error:
            import pytest

            detail = getattr(error, "stderr", b"") or str(error).encode()
            pytest.skip(f"cannot make {path} read-only for root here: "
                        f"{detail.decode(errors='replace').strip()}")
    else:
        os.chmod(path, 0o555 if path.is_dir() else 0o444)


def make_writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=False, capture_output=True)
    os.chmod(path, 0o755 if path.is_dir() else 0o644)
