"""Devices a Ray actor was given (its GPU) reach its sandbox; nothing else of the host's /dev."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from aarlab.sandbox import BubblewrapSandbox, Limits, SandboxSpec
from aarlab.sandbox import sandbox_available as _available
from aarlab.sandbox.spec import check_env

BWRAP_OK, BWRAP_REASON = _available()
# A host device that bubblewrap's minimal /dev does not have (a stand-in for /dev/nvidia0).
SHOWN = next((Path(p) for p in ("/dev/loop-control", "/dev/fuse", "/dev/net/tun")
              if Path(p).exists()), None)


@pytest.mark.skipif(not BWRAP_OK, reason=BWRAP_REASON)
@pytest.mark.skipif(SHOWN is None, reason="no spare device node on this host")
def test_only_the_given_devices_appear(tmp_path):
    def exists_inside(**fields) -> bool:
        spec = SandboxSpec(name="gpu", workspace=tmp_path / "ws",
                           limits=Limits(timeout_s=30), **fields)
        r = BubblewrapSandbox(spec).exec(["sh", "-c", f"test -e {SHOWN} && echo yes || echo no"])
        assert r.ok, r.stderr
        return r.stdout.strip() == "yes"

    assert not exists_inside()
    assert exists_inside(devices=(SHOWN,))


@pytest.mark.parametrize("bad", ["/etc/passwd", "/dev/../etc/shadow", "relative/dev"])
def test_a_device_must_be_under_dev(tmp_path, bad):
    with pytest.raises(ValidationError, match="devices"):
        SandboxSpec(name="gpu", workspace=tmp_path, devices=(Path(bad),))


def test_the_gpu_choice_may_enter_but_not_the_lab_secrets():
    assert check_env({"CUDA_VISIBLE_DEVICES": "0"}) == {"CUDA_VISIBLE_DEVICES": "0"}
