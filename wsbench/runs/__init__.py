"""Run records and a run's lifecycle.

Layout of a runs directory::

    RUNS_DIR/
      <run-id>/config.json        every option with resolved defaults, seed, versions, commit
      <run-id>/result.json        written last, only when the run finished
      <run-id>/maps/ ...          whatever the run stores besides (figures, sweep curves)
      classifiers/<hash>/         trained classifiers shared by runs with the same training config

Every JSON file is written to a temporary file in the same directory and renamed into place, so
a reader never sees half a file and a crash never corrupts a finished result.

``records``: ids, writing and reading records; ``checks``: what a record must hold and whether it is a
distilled run's (:func:`is_distilled`); ``lifecycle``: start or resume a run, assemble its result.
"""

from .checks import (
    CONFIG_FILE,
    CONFIG_SCHEMA,
    FUSION_SCHEMA,
    RESULT_FILE,
    RESULT_SCHEMA,
    RecordError,
    check_record,
    is_distilled,
    is_reference,
)
from .lifecycle import latest_run, run_result, same_run, start_run
from .records import (
    RUNS_ENV,
    SAMPLE_MAPS_FILE,
    RunRecord,
    cam_inference,
    create_run,
    environment,
    finish_run,
    iter_runs,
    load_sample_maps,
    new_run_id,
    recorded_split_seed,
    resolve_runs_dir,
    save_sample_maps,
)

__all__ = ["CONFIG_FILE", "CONFIG_SCHEMA", "FUSION_SCHEMA", "RESULT_FILE", "RESULT_SCHEMA", "RUNS_ENV", "RecordError",
           "RunRecord", "SAMPLE_MAPS_FILE", "cam_inference", "check_record", "create_run", "environment", "finish_run",
           "is_distilled", "is_reference", "iter_runs", "latest_run", "load_sample_maps", "new_run_id", "recorded_split_seed",
           "resolve_runs_dir", "run_result", "same_run", "save_sample_maps", "start_run"]
