#!/usr/bin/env bash
# Mutation testing of the pure core (README "Mutation testing"; [tool.mutmut] in pyproject.toml
# lists the modules and the tests). Not part of .ci/run: a full run takes about half an hour.
#
#   tools/mutation.sh                          every module of the pure core
#   tools/mutation.sh router.planner router.ownership   only these (the others are not checked)
#
# Starts from an empty mutants/ each time (mutmut caches results there, and a cached verdict
# from older code is not a result), runs one worker (MUTATION_WORKERS to change it: the machine
# is shared), then prints the score table from mutmut's own result files, and the survivors.
# `mutmut show <name>` prints a survivor's diff; `mutmut browse` lists them all.
set -euo pipefail
cd "$(dirname "$0")/.."

patterns=()
for module in "$@"; do
  patterns+=("sync_job.${module}.*")
done

rm -rf mutants
started=$(date +%s)
mutmut run --max-children "${MUTATION_WORKERS:-1}" "${patterns[@]}"
echo
echo "== mutation score (mutmut $(mutmut --version | awk '{print $NF}'), $(( $(date +%s) - started )) s)"
python3 tools/mutation_score.py --survivors
