"""The README's pull-request workflows (GitHub Actions and GitLab CI) parse, run the documented
command, keep one comment, and fail only on exit 1 or 64.

Their shell steps run here with a stand-in `router-policy-sync` (it exits with the code under
test) and a stand-in `gh` that records its calls and answers the comment listing through the
real `jq` with the step's own filter. No network: everything is local files and processes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.router import REPO

COMMAND = "router-policy-sync sync --check --policies-from policies --output markdown"
MARKER = "<!-- router-policy-sync plan -->"


def workflow(name: str) -> Any:
    readme = (REPO / "README.md").read_text()
    found = re.findall(rf"<!-- workflow: {name} -->\n```yaml\n(.*?)\n```", readme, re.S)
    assert len(found) == 1, f"README has {len(found)} blocks marked `workflow: {name}`"
    return yaml.safe_load(found[0])


def tool(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def fake_sync(bin_dir: Path, code: int, prints: bool = True) -> None:
    body = f"printf '{MARKER}\\nplan body\\n'\n" if prints else ""
    tool(bin_dir, "router-policy-sync", f'echo "$*" > "$CALLS/sync"\n{body}exit {code}\n')


def shell(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env={**os.environ, **env, "PATH": f"{env['BIN']}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def world(tmp_path: Path) -> dict[str, str]:
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    calls.mkdir()
    return {"BIN": str(bin_dir), "CALLS": str(calls), "RUNNER_TEMP": str(tmp_path)}


def steps() -> dict[str, dict[str, Any]]:
    (job,) = workflow("github")["jobs"].values()
    return {step.get("name", step.get("uses")): step for step in job["steps"]}


def test_github_workflow_runs_on_pull_requests_with_the_documented_command() -> None:
    document = workflow("github")
    triggers = document.get("on", document.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers
    assert document["permissions"]["pull-requests"] == "write"
    (job,) = document["jobs"].values()
    assert "self-hosted" in job["runs-on"]
    assert job["steps"][0]["uses"].startswith("actions/checkout@")
    assert COMMAND in steps()["plan"]["run"]
    assert (
        "secrets.ROUTER_PLAN_KUBECONFIG"
        in steps()["kubeconfig from a secret"]["env"]["KUBECONFIG_DATA"]
    )


@pytest.mark.parametrize(("code", "fails"), [(0, False), (2, False), (1, True), (64, True)])
def test_github_workflow_fails_only_on_1_or_64(
    world: dict[str, str], tmp_path: Path, code: int, fails: bool
) -> None:
    fake_sync(Path(world["BIN"]), code)
    output = tmp_path / "github_output"
    output.write_text("")
    plan = shell(steps()["plan"]["run"], tmp_path, {**world, "GITHUB_OUTPUT": str(output)})
    assert plan.returncode == 0, plan.stderr  # the plan step never fails: the comment comes first
    assert (Path(world["CALLS"]) / "sync").read_text().strip() == COMMAND.split(" ", 1)[1]
    assert output.read_text() == f"code={code}\n"
    assert (tmp_path / "plan.md").read_text().startswith(MARKER)
    gate = shell(steps()["fail only on 1 or 64"]["run"], tmp_path, {**world, "CODE": str(code)})
    assert (gate.returncode != 0) is fails, gate.stdout + gate.stderr


def test_github_workflow_comments_even_when_the_command_printed_nothing(
    world: dict[str, str], tmp_path: Path
) -> None:
    fake_sync(Path(world["BIN"]), 64, prints=False)
    output = tmp_path / "github_output"
    shell(steps()["plan"]["run"], tmp_path, {**world, "GITHUB_OUTPUT": str(output)})
    text = (tmp_path / "plan.md").read_text()
    assert text.startswith(MARKER) and "exit 64" in text


@pytest.mark.skipif(shutil.which("jq") is None, reason="the stand-in gh needs jq")
@pytest.mark.parametrize("existing", [False, True])
def test_github_workflow_keeps_one_sticky_comment(
    world: dict[str, str], tmp_path: Path, existing: bool
) -> None:
    comments = [{"id": 11, "body": "LGTM"}, {"id": 12, "body": "a plan? " + MARKER}]
    if existing:
        comments.append({"id": 13, "body": MARKER + "\nold plan"})
    (tmp_path / "comments.json").write_text(json.dumps(comments))
    (tmp_path / "plan.md").write_text(MARKER + "\nnew plan\n")
    tool(
        Path(world["BIN"]),
        "gh",
        'echo "$*" >> "$CALLS/gh"\n'
        "while [ $# -gt 0 ]; do\n"
        '  if [ "$1" = "--jq" ]; then jq -r "$2" "$COMMENTS"; exit 0; fi\n'
        "  shift\n"
        "done\n",
    )
    env = {**world, "GH_TOKEN": "t", "PR": "7", "GITHUB_REPOSITORY": "me/policies"}
    env["COMMENTS"] = str(tmp_path / "comments.json")
    done = shell(steps()["post or update the one comment"]["run"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    listing, write = (Path(world["CALLS"]) / "gh").read_text().splitlines()
    assert listing.startswith("api repos/me/policies/issues/7/comments --paginate --jq")
    if existing:
        assert write == "api -X PATCH repos/me/policies/issues/comments/13 -F body=@plan.md"
    else:
        assert write == "api -X POST repos/me/policies/issues/7/comments -F body=@plan.md"


def test_gitlab_job_runs_the_command_and_allows_only_exit_2() -> None:
    job = workflow("gitlab")["router-plan"]
    assert job["allow_failure"] == {"exit_codes": [2]}
    assert job["image"]["entrypoint"] == [""]
    assert "lan" in job["tags"]
    assert "merge_request_event" in job["rules"][0]["if"]
    assert job["artifacts"]["paths"] == ["plan.md"]
    (script,) = job["script"]
    assert COMMAND in script


@pytest.mark.parametrize("code", [0, 1, 2, 64])
def test_gitlab_job_exits_with_the_commands_code(
    world: dict[str, str], tmp_path: Path, code: int
) -> None:
    fake_sync(Path(world["BIN"]), code)
    (script,) = workflow("gitlab")["router-plan"]["script"]
    done = subprocess.run(
        ["sh", "-e", "-c", script],
        cwd=tmp_path,
        env={**os.environ, **world, "PATH": f"{world['BIN']}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == code
    assert MARKER in done.stdout  # the plan shows in the job log too
    assert (tmp_path / "plan.md").read_text().startswith(MARKER)
