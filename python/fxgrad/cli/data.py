"""``fxgrad data build`` and ``data pairs``: the DeepAFx tasks' data sets, and a training folder
from your own files (their options and commands live in :mod:`fxgrad.data.tasks` and
:mod:`fxgrad.data.pairs`)."""

from __future__ import annotations


def add_data(commands) -> None:
    from ..data import pairs, tasks

    p = commands.add_parser("data", help="build data sets: the DeepAFx tasks' (build) or from your own files (pairs)")
    data_commands = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    build = data_commands.add_parser("build", help="build TASK's data set in OUT_DIR (docs/tasks.md)")
    tasks.add_build_arguments(build)
    build.set_defaults(run=tasks.run_build)
    made = data_commands.add_parser("pairs", help="a training folder from your own files (paired, or rendered targets)")
    pairs.add_arguments(made)
    made.set_defaults(run=pairs.run)
