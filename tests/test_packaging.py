"""No Docker engine here: replay the Dockerfile's build-stage install steps in a fresh
virtualenv and show the result is a working command, installed from the hash-checked lock file
alone; and hold the lock file and the base image pin to what README promises."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sync_job import __version__
from tests.support.router import REPO

LOCK = REPO / "requirements.lock"
# a base image pinned by digest, tag beside it: python:3.11-slim@sha256:<64 hex>
PINNED = re.compile(r"^python:3\.11-slim@sha256:([0-9a-f]{64})$")
# a lock entry: `name==version` (maybe ` ; marker`), then its `--hash=sha256:` lines
_PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?: ;[^\\\n]*)? \\\n"
    r"((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)",
    re.M,
)


def _stages() -> list[str]:
    """Each stage's text, from its FROM line's image on."""
    return re.split(r"^FROM ", (REPO / "Dockerfile").read_text(), flags=re.M)[1:]


def _build_stage() -> tuple[list[str], list[str]]:
    build = _stages()[0]
    copies = re.findall(r"^COPY (.+) \S+$", build, re.M)
    runs = re.findall(r"^RUN (.+)$", build, re.M)
    return [path for line in copies for path in line.split()], runs


def locked(text: str | None = None) -> dict[str, tuple[str, int]]:
    """Canonical name -> (pinned version, number of hashes), for every entry of the lock."""
    text = LOCK.read_text() if text is None else text
    entries = {
        canonicalize_name(m.group(1)): (m.group(2), m.group(3).count("--hash="))
        for m in _PIN.finditer(text)
    }
    named = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", text, re.M)
    assert len(named) == len(entries), "an entry of the lock has no hash"
    return entries


def unsatisfied(pyproject: dict[str, object], lock: dict[str, tuple[str, int]]) -> list[str]:
    """The runtime requirements of pyproject.toml the lock does not pin at an allowed version."""
    problems = []
    for line in pyproject["project"]["dependencies"]:  # type: ignore[index]
        requirement = Requirement(line)
        pin = lock.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement.name} is not in the lock")
        elif not requirement.specifier.contains(pin[0], prereleases=True):
            problems.append(f"{requirement.name}=={pin[0]} does not satisfy {line!r}")
    return problems


def test_the_lock_pins_every_runtime_requirement_of_pyproject_within_its_range() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    lock = locked()
    assert unsatisfied(pyproject, lock) == [], "refresh requirements.lock (README)"
    assert all(hashes >= 1 for _, hashes in lock.values())
    # test-only tools stay out of the image
    assert not {"pytest", "mypy", "ruff", "promql-parser"} & set(lock)


def test_the_satisfaction_check_catches_a_stale_lock() -> None:
    lock = locked()
    assert unsatisfied({"project": {"dependencies": ["httpx>=99"]}}, lock) == [
        f"httpx=={lock['httpx'][0]} does not satisfy 'httpx>=99'"
    ]
    assert unsatisfied({"project": {"dependencies": ["left-pad>=1"]}}, lock) == [
        "left-pad is not in the lock"
    ]
    unhashed = "httpx==0.28.1\n    # via router-policy-sync\n"
    try:
        locked(unhashed)
    except AssertionError as error:
        assert "no hash" in str(error)
    else:
        raise AssertionError("an entry without hashes was accepted")


def test_dockerfile_install_steps_give_a_working_command(tmp_path: Path) -> None:
    copies, runs = _build_stage()
    assert runs and all("/opt/venv" in run for run in runs)
    assert "requirements.lock" in copies
    assert any("--require-hashes -r requirements.lock" in run for run in runs)
    assert any(run.endswith("--no-deps .") for run in runs)
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
    python = venv / "bin" / "python"
    listed = subprocess.run(
        [python, "-c", "import importlib.metadata as m\n"
         "for d in m.distributions(): print(d.metadata['Name'], d.version)"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    installed = dict(line.split(" ", 1) for line in listed if line)
    assert installed.pop("router-policy-sync") == __version__
    # exactly the lock's pins (less those whose marker excludes Linux), no installer left
    lock = locked()
    assert {canonicalize_name(n): v for n, v in installed.items()} == {
        name: version for name, (version, _) in lock.items() if name != "colorama"
    }
    for tool in ("pip", "setuptools", "wheel"):
        found = subprocess.run([python, "-c", f"import {tool}"], capture_output=True)
        assert found.returncode != 0, f"{tool} is left in the venv"
    assert not (venv / "bin" / "pip").exists()


def test_dockerfile_runs_as_non_root_with_the_expected_entrypoint() -> None:
    final = _stages()[-1]
    assert re.search(r"^USER 65532:65532$", final, re.M)
    assert 'ENTRYPOINT ["router-policy-sync"]' in final and 'CMD ["sync"]' in final
    assert final.startswith("python:3.11-slim")


def test_the_runtime_stage_removes_the_base_images_installers() -> None:
    final = _stages()[-1]
    assert "RUN python -m pip uninstall --yes pip setuptools wheel && rm -f /usr/local/bin/pip" in (
        final
    )
    assert "pip install" not in final


def test_the_base_image_is_pinned_by_digest_with_its_tag() -> None:
    """A digest, the same in both stages, and never a placeholder (all one digit)."""
    froms = [
        line.split()[0]
        for line in re.findall(r"^FROM (.+)$", (REPO / "Dockerfile").read_text(), re.M)
    ]
    digests = []
    for image in froms:
        match = PINNED.match(image)
        assert match, f"{image} is not python:3.11-slim@sha256:<digest>"
        digests.append(match.group(1))
    assert len(set(digests)) == 1, "both stages must use the same base image"
    assert len(set(digests[0])) > 1, "the base image digest is a placeholder"


def test_dockerfile_and_readme_build_for_amd64_and_arm64() -> None:
    text = (REPO / "Dockerfile").read_text()
    platforms = "--platform linux/amd64,linux/arm64"
    assert f"docker buildx build {platforms}" in text
    assert f"docker buildx build {platforms}" in (REPO / "README.md").read_text()
    # Every stage on the target platform: a stage pinned to one platform (or to the build
    # machine's) would put that platform's wheels into the other platform's image.
    froms = re.findall(r"^FROM (.+)$", text, re.M)
    assert [re.sub(r"@sha256:[0-9a-f]{64}", "", f) for f in froms] == [
        "python:3.11-slim AS build",
        "python:3.11-slim",
    ]
    assert "--platform" not in " ".join(froms)
