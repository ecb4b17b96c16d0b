"""The ``wsbench`` command line (click). Wiring only: the work happens in the library modules.

Errors that users can fix (:class:`~wsbench.errors.UserError`, unknown registry names) print one
line and exit with status 1; ``--debug`` shows the traceback instead.
"""

from . import data, deploy, run, tables  # noqa: F401  (each module adds its commands to the group)
from .base import cli, dataset_options, main
from .run import recipe_from, run_cmd, run_options

__all__ = ["cli", "dataset_options", "main", "recipe_from", "run_cmd", "run_options"]

if __name__ == "__main__":  # pragma: no cover
    main()
