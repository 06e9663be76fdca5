"""The README's promises that tests can hold it to."""

from __future__ import annotations

import re

from tests.support.router import REPO


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)\n```", readme.split("## Quick start", 1)[1], re.S)
    install_and_demo, test_command = blocks[0].strip(), blocks[1].strip()
    assert install_and_demo.endswith("router-policy-sync demo")
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


def test_every_sync_flag_and_env_twin_is_documented() -> None:
    from sync_job.cli import app

    readme = (REPO / "README.md").read_text()
    import typer.main

    command = typer.main.get_command(app).commands["sync"]  # type: ignore[attr-defined]
    for param in command.params:
        assert param.opts[0] in readme, param.opts[0]
        assert param.envvar and f"`{param.envvar}`" in readme, param.envvar


def test_readme_names_the_tool_versions_the_test_setup_builds() -> None:
    script = (REPO / "tests" / "controlplane" / "build-tools.sh").read_text()
    development = (REPO / "README.md").read_text().split("## Development", 1)[1]
    for tool, variable in (("kubectl", "KUBECTL_VERSION"), ("helm", "HELM_VERSION")):
        pinned = re.search(rf"^{variable}=\$\{{{variable}:-(v[\d.]+)\}}$", script, re.M)
        assert pinned, variable
        assert f"`{tool}` {pinned.group(1)}" in development, (tool, pinned.group(1))


def test_install_paths_in_the_readme_exist() -> None:
    install = (REPO / "README.md").read_text().split("## Installing it in a cluster", 1)[1]
    install = install.split("\n## ", 1)[0]
    paths = set(re.findall(r"\b((?:manifests|charts)/[\w./-]*\w)", install))
    assert {"manifests/base", "manifests/overlays/example", "charts/router-policy-sync"} <= paths
    missing = {p for p in paths if "<" not in p and not (REPO / p).exists()}
    assert not missing, missing
