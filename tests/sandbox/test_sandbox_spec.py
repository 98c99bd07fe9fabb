"""Specs, the environment allow-list, the factory and its refusal to mount private paths."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from rich.console import Console

from aarlab.config import Settings
from aarlab.sandbox import (
    BubblewrapSandbox,
    Limits,
    ProcessSandbox,
    SandboxError,
    SandboxSpec,
    SandboxUnavailableError,
    factory,
    make_sandbox,
    sandbox_available,
)
from aarlab.sandbox.bwrap import bwrap_argv
from aarlab.sandbox.spec import check_env


@pytest.fixture
def home(tmp_path) -> Settings:
    s = Settings(home=tmp_path / "home")
    (s.answer_keys_dir / "tweets").mkdir(parents=True)
    (s.kits_dir / "tweets").mkdir(parents=True)
    return s


def test_env_allow_list():
    assert check_env({"AARLAB_TOKEN": "t", "OMP_NUM_THREADS": "2"})
    for name, match in [("ANTHROPIC_API_KEY", "not allowed"), ("LD_PRELOAD", "not allowed"),
                        ("AARLAB_ADMIN_TOKEN", "must never"), ("AARLAB_DB_URL", "must never"),
                        ("lower", "bad variable name")]:
        with pytest.raises(SandboxError, match=match):
            check_env({name: "x"})


def test_spec_errors_name_the_field(tmp_path):
    with pytest.raises(ValidationError, match="kit"):
        SandboxSpec(name="r1", workspace=tmp_path / "ws", kit=tmp_path / "missing")
    with pytest.raises(ValidationError, match="name"):
        SandboxSpec(name="../evil", workspace=tmp_path / "ws")
    with pytest.raises(ValidationError, match="OPENAI_API_KEY is not allowed"):
        SandboxSpec(name="r1", workspace=tmp_path / "ws", env={"OPENAI_API_KEY": "sk"})
    with pytest.raises(ValidationError, match="memory_bytes"):
        SandboxSpec(name="r1", workspace=tmp_path / "ws", limits={"memory_bytes": 10})


@pytest.mark.parametrize(("field", "where", "match"), [
    ("kit", lambda s: s.answer_keys_dir / "tweets", "would expose"),
    ("kit", lambda s: s.answer_keys_dir.parent, "would expose"),
    ("workspace", lambda s: s.home, "would expose"),
    ("workspace", lambda s: s.answer_keys_dir / "tweets" / "ws", "would expose"),
    ("extra_ro", lambda s: s.home.parent, "would expose"),
])
def test_factory_refuses_mounts_that_reach_private_paths(home, field, where, match):
    fields = {"name": "r1", "workspace": home.home / "workspaces" / "r1",
              "kit": home.kits_dir / "tweets"}
    target = where(home)
    target.mkdir(parents=True, exist_ok=True)
    fields[field] = (target,) if field == "extra_ro" else target
    with pytest.raises(SandboxError, match=f"{field}.*{match}"):
        make_sandbox(SandboxSpec(**fields), settings=home, allow_unsandboxed=True,
                     console=Console(file=io.StringIO()))


def test_factory_refuses_a_mount_of_the_store(tmp_path):
    db = tmp_path / "elsewhere" / "lab.db"
    db.parent.mkdir()
    settings = Settings(home=tmp_path / "home", db_url=f"sqlite:///{db}")
    spec = SandboxSpec(name="r1", workspace=tmp_path / "ws", extra_ro=(db.parent,))
    with pytest.raises(SandboxError, match=r"extra_ro\[0\].*lab.db"):
        make_sandbox(spec, settings=settings, allow_unsandboxed=True,
                     console=Console(file=io.StringIO()))


def test_without_bubblewrap_the_fallback_needs_the_flag(home, monkeypatch):
    monkeypatch.setattr(factory, "sandbox_available",
                        lambda: (False, "bwrap cannot create the sandbox here: no userns"))
    spec = SandboxSpec(name="r1", workspace=home.home / "workspaces" / "r1",
                       kit=home.kits_dir / "tweets")
    with pytest.raises(SandboxUnavailableError, match="no userns") as e:
        make_sandbox(spec, settings=home)
    assert "apt-get install -y bubblewrap" in e.value.hint
    out = io.StringIO()
    sb = make_sandbox(spec, settings=home, allow_unsandboxed=True,
                      console=Console(file=out, width=200))
    assert isinstance(sb, ProcessSandbox) and sb.sandboxed is False
    assert "UNSANDBOXED" in out.getvalue() and "WITHOUT a sandbox" in out.getvalue()
    assert sb.exec(["pwd"]).stdout.strip() == str(spec.workspace)


def test_factory_prefers_bubblewrap_when_it_works(home, monkeypatch):
    monkeypatch.setattr(factory, "sandbox_available", lambda: (True, "ok"))
    spec = SandboxSpec(name="r1", workspace=home.home / "workspaces" / "r1")
    sb = make_sandbox(spec, settings=home, allow_unsandboxed=True)
    assert isinstance(sb, BubblewrapSandbox) and sb.sandboxed is True


def test_bwrap_command_line_confines_and_mounts_only_what_it_should(home):
    spec = SandboxSpec(name="r1", workspace=home.home / "workspaces" / "r1",
                       kit=home.kits_dir / "tweets")
    argv = bwrap_argv(spec, ["python", "x.py"], "/workspace", [Path("/opt/py")], {}, 1 << 20)
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                 "--new-session"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    binds = [(argv[i], argv[i + 1], argv[i + 2]) for i, a in enumerate(argv)
             if a in ("--bind", "--ro-bind", "--ro-bind-try")]
    writable = [(src, dst) for kind, src, dst in binds if kind == "--bind"]
    assert writable == [(str(spec.workspace.resolve()), "/workspace")]
    assert ("--ro-bind", str(spec.kit.resolve()), "/kit") in binds
    home_sources = {src for _, src, _ in binds if str(home.home) in src}
    assert home_sources == {str(spec.kit.resolve()), str(spec.workspace.resolve())}
    assert argv[argv.index("--") + 1:] == ["python", "x.py"]


def test_dev_is_read_only_with_a_capped_shm(home):
    spec = SandboxSpec(name="r1", workspace=home.home / "workspaces" / "r1",
                       limits=Limits(shm_bytes=8 << 20))
    argv = bwrap_argv(spec, ["true"], "/workspace", [], {}, 1 << 20)
    shm = argv.index("/dev/shm")
    assert argv[shm - 3: shm] == ["--size", str(8 << 20), "--tmpfs"]
    assert argv[shm + 1: shm + 3] == ["--remount-ro", "/dev"]


@pytest.mark.skipif(not sandbox_available()[0], reason="bubblewrap does not work here")
def test_a_root_lab_hands_bwrap_staged_paths_not_its_own(home):
    from aarlab.sandbox.hostuser import privileged

    if not privileged():
        pytest.skip("only a root lab stages paths for an unprivileged sandbox uid")
    spec = SandboxSpec(name="r1", workspace=home.home / "workspaces" / "r1")
    sb = BubblewrapSandbox(spec)
    launch = sb._command(["true"], "/workspace")
    try:
        hosts = {host for host, _ in launch.stage}
        assert str(spec.workspace.resolve()) in hosts
        system = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}
        binds = [launch.argv[i + 1] for i, a in enumerate(launch.argv)
                 if a in ("--bind", "--ro-bind") and launch.argv[i + 1] not in system]
        assert binds and all(b.startswith("/tmp/") for b in binds), binds
        assert str(home.home) not in " ".join(launch.argv)
    finally:
        for fd in (*launch.pass_fds, *launch.hold_fds):
            os.close(fd)
