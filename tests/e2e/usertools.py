"""The client tools a user installs with: real ``kubectl`` (its kustomize built in) and ``helm``.

This module owns finding them: ``KUBECTL``/``HELM`` name a binary to use, otherwise
``tests/controlplane/build-tools.sh`` builds the pinned version from its Go module on first use
(cached under ``~/.cache/router-policy-sync/tools/``). The session fixtures ``kubectl`` and
``helm`` skip the tests needing a tool that cannot be had, or fail them when ``CI=true``, the
same rule ``conftest.py`` applies to the control plane. Test modules import the fixtures by
their function names (``kubectl_fixture``, ``helm_fixture``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BUILD_SCRIPT = Path(__file__).resolve().parents[1] / "controlplane" / "build-tools.sh"
LOG_TAIL = 30

_found: dict[str, Path | str] = {}  # tool -> binary, or the reason it is unavailable


@dataclass(frozen=True)
class Tool:
    """One tool binary, run with a fixed environment (its kubeconfig, its helm home)."""

    path: Path
    env: Mapping[str, str] = field(default_factory=dict)

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        check: bool = True,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.path), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env, **(env or {})},
            cwd=cwd,
            input=stdin,
            timeout=120,
            check=False,
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"{self.path.name} {' '.join(args)} exited {done.returncode}:\n{done.stderr}",
                pytrace=False,
            )
        return done


def find(tool: str) -> Path | str:
    """The binary for ``tool``, or why there is none; built at most once per session."""
    if tool not in _found:
        _found[tool] = _find(tool)
    return _found[tool]


def _find(tool: str) -> Path | str:
    given = os.environ.get(tool.upper())
    if given:
        path = Path(given)
    else:
        try:
            done = subprocess.run(
                [str(BUILD_SCRIPT), tool], capture_output=True, text=True, timeout=3600
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{BUILD_SCRIPT} could not run: {exc}"
        if done.returncode != 0:
            tail = "\n".join(done.stderr.splitlines()[-LOG_TAIL:])
            return f"{BUILD_SCRIPT} {tool} exited {done.returncode}:\n{tail}"
        path = Path(done.stdout.strip().splitlines()[-1])
    if not os.access(path, os.X_OK):
        return f"no executable {tool} at {path}"
    return path


def require(tool: str) -> Tool:
    found = find(tool)
    if isinstance(found, str):
        message = f"{tool} unavailable: {found}"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return Tool(found)


@pytest.fixture(scope="session", name="kubectl")
def kubectl_fixture() -> Tool:
    """kubectl built from k8s.io/kubernetes at the test kube-apiserver's release."""
    return require("kubectl")


@pytest.fixture(scope="session", name="helm")
def helm_fixture(tmp_path_factory: pytest.TempPathFactory) -> Tool:
    """helm, with its config, cache and data kept in a temporary home (nothing of the user's)."""
    tool = require("helm")
    home = tmp_path_factory.mktemp("helm-home")
    names = ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME")
    return Tool(tool.path, {name: str(home / name.lower()) for name in names})


def bash(script: str, env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` as a user's shell would, stopping at the first failing command."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        timeout=300,
        check=False,
    )


def env_with(tools: Sequence[Tool]) -> dict[str, str]:
    """The tools' environments, and PATH with their directories first, so a script's
    ``kubectl`` is the built one."""
    env: dict[str, str] = {}
    for tool in tools:
        env |= tool.env
    dirs = [str(t.path.parent) for t in tools]
    env["PATH"] = os.pathsep.join([*dirs, os.environ.get("PATH", "")])
    return env
