"""No Docker engine here: replay the Dockerfile's build-stage install steps in a fresh
virtualenv and show the result is a working command."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from sync_job import __version__
from tests.support.router import REPO


def _build_stage() -> tuple[list[str], list[str]]:
    text = (REPO / "Dockerfile").read_text()
    build = text.split("FROM ", 2)[1]
    copies = re.findall(r"^COPY (.+) \S+$", build, re.M)
    runs = re.findall(r"^RUN (.+)$", build, re.M)
    return [path for line in copies for path in line.split()], runs


def test_dockerfile_install_steps_give_a_working_command(tmp_path: Path) -> None:
    copies, runs = _build_stage()
    assert runs and all("/opt/venv" in run for run in runs)
    source = tmp_path / "src"
    source.mkdir()
    for name in copies:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(origin, source / name)
    venv = tmp_path / "venv"
    for run in runs:
        command = run.replace("/opt/venv", str(venv)).replace("python -m venv", "python3 -m venv")
        subprocess.run(
            command, shell=True, cwd=source, check=True, capture_output=True, timeout=600
        )
    command = venv / "bin" / "router-policy-sync"
    version = subprocess.run([command, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == __version__
    usage = subprocess.run(
        [command, "sync", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert "--mikrotik-password-file" in usage.stdout


def test_dockerfile_runs_as_non_root_with_the_expected_entrypoint() -> None:
    text = (REPO / "Dockerfile").read_text()
    final = text.rsplit("FROM ", 1)[1]
    assert re.search(r"^USER 65532:65532$", final, re.M)
    assert 'ENTRYPOINT ["router-policy-sync"]' in final and 'CMD ["sync"]' in final
    assert final.startswith("python:3.11-slim")


def test_dockerfile_and_readme_build_for_amd64_and_arm64() -> None:
    text = (REPO / "Dockerfile").read_text()
    platforms = "--platform linux/amd64,linux/arm64"
    assert f"docker buildx build {platforms}" in text
    assert f"docker buildx build {platforms}" in (REPO / "README.md").read_text()
    # Every stage on the target platform: a stage pinned to one platform (or to the build
    # machine's) would put that platform's wheels into the other platform's image.
    froms = re.findall(r"^FROM (.+)$", text, re.M)
    assert froms == ["python:3.11-slim AS build", "python:3.11-slim"]
    assert "--platform" not in " ".join(froms)
