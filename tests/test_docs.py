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
