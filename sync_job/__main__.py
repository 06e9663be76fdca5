"""`python -m sync_job` runs the command-line interface."""

from sync_job.cli import main

main()
