"""The web demo's temporary folders: private, one per call, pruned by age, removed on close."""

from __future__ import annotations

import os
import stat
import time

from jointportrait.serve.workspace import Workspace


def test_call_folders_are_private_fresh_and_pruned():
    with Workspace(max_age_s=60) as ws:
        assert stat.S_IMODE(ws.root.stat().st_mode) == 0o700
        first, second = ws.call_dir(), ws.call_dir()
        assert first != second and first.parent == second.parent == ws.calls_dir
        (first / "portrait_depth.npy").write_bytes(b"x")
        old = time.time() - 120
        os.utime(first, (old, old))
        assert ws.prune() == 1
        assert not first.exists() and second.exists()
        ws.call_dir()  # every new call prunes too
        root = ws.root
    assert not root.exists()
