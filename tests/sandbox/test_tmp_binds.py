"""Read-only code and data that live under the host's /tmp stay visible inside.

CI clones the repository into a temporary folder, so the virtualenv and the source can sit
under /tmp; the sandbox's private /tmp must not hide them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def test_a_read_only_dir_under_host_tmp_is_visible_inside(make):
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="aarlab-code-") as d:
        code = Path(d)
        (code / "module.txt").write_text("visible")
        sandbox = make(extra_ro=(code,))
        result = sandbox.exec(["cat", str(code / "module.txt")])
        assert result.returncode == 0, result.stderr
        assert result.stdout == "visible"
        # ... and it stays read-only.
        denied = sandbox.exec(["sh", "-c", f"echo x > {code / 'module.txt'}"])
        assert denied.returncode != 0 or sandbox.sandboxed is False
        if sandbox.sandboxed:
            assert (code / "module.txt").read_text() == "visible"


def test_private_tmp_is_still_private(make):
    sandbox = make()
    if not sandbox.sandboxed:
        return  # the plain-process fallback shares the host's /tmp by design
    marker = f"/tmp/aarlab-private-{Path(tempfile.mktemp()).name}"
    assert sandbox.exec(["sh", "-c", f"echo inside > {marker}"]).returncode == 0
    assert not Path(marker).exists()
