"""Per-module mutation score from mutmut's own result files (mutants/**/*.py.meta).

Each meta file maps every mutant of one source file to the exit code of its test run; mutmut's
`status_by_exit_code` turns that into killed, survived, no tests, timeout and so on. A mutant
counts as killed only when mutmut says "killed" (a timeout is listed apart, not counted), and
the score is killed / checked, where checked leaves out only the mutants not run (a partial
run). Usage: python3 tools/mutation_score.py [--survivors]
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

COLUMNS = ("killed", "survived", "no tests", "timeout", "other")


def _modules() -> list[str]:
    config = tomllib.loads(Path("pyproject.toml").read_text("utf-8"))["tool"]["mutmut"]
    return list(config["only_mutate"])


def _results(module: str) -> dict[str, int | None]:
    meta = Path("mutants") / f"{module}.meta"
    if not meta.exists():
        return {}
    data: dict[str, dict[str, int | None]] = json.loads(meta.read_text("utf-8"))
    return data["exit_code_by_key"]


def _bucket(status: str) -> str:
    return status if status in COLUMNS or status == "not checked" else "other"


def main(argv: list[str]) -> int:
    rows = []
    survivors: list[tuple[str, str]] = []
    for module in _modules():
        counts: Counter[str] = Counter()
        for name, code in _results(module).items():
            status = status_by_exit_code[code]
            counts[_bucket(status)] += 1
            if status != "killed" and status != "not checked":
                survivors.append((status, name))
        checked = sum(counts.values()) - counts["not checked"]
        rows.append((module, counts, checked))
    header = f"{'module':<32} " + " ".join(f"{c:>9}" for c in COLUMNS) + "  killed/checked"
    print(header)
    print("-" * len(header))
    total: Counter[str] = Counter()
    for module, counts, checked in rows:
        total.update(counts)
        print(_line(module, counts, checked))
    print("-" * len(header))
    print(_line("all", total, sum(total.values()) - total["not checked"]))
    if total["not checked"]:
        print(f"({total['not checked']} mutants not checked in this run)")
    if "--survivors" in argv:
        print()
        for status, name in sorted(survivors, key=lambda item: item[1]):
            print(f"{status:<10} {name}")
    return 0


def _line(module: str, counts: Counter[str], checked: int) -> str:
    score = (
        f"{counts['killed']}/{checked} = {100 * counts['killed'] / checked:5.1f} %"
        if checked
        else "-"
    )
    cells = " ".join(f"{counts[c]:>9}" for c in COLUMNS)
    return f"{module:<32} {cells}  {score}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
