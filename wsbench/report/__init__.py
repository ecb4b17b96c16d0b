"""Tables from stored results: run records → long-form table → the paper's three tables.

Nothing here recomputes a metric; every number comes from a ``result.json``, and everything the
tables say about a method (display name, modules, default options, the fusion it chooses, whether
it trains on clips) comes from ``method_info`` in the run's ``config.json``, written when the run
was made (:func:`wsbench.methods.method_info`). This module imports no method, no trainer and no
torch: only the run records and pandas. A record written before ``method_info`` existed is refused
with one line (``wsbench leaderboard`` first fills it in from the method registry, see
:func:`wsbench.methods.complete_method_info`). The tables:

- **comparison** (paper Table 1): rows data sets, one column per method variant (GradCAM,
  Frame-to-Frame, PuzzleCAM, temporal-consistent CAM first, then any other variant with results),
  plus the all-foreground reference; cells mean ± std ×100 over seeds of a test metric;
- **ablation** (paper Table 2): rows data sets, columns None / Only temporal / Only spatial / Both,
  from the runs of ``cam``, ``puzzlecam`` and ``tccam`` (with ``--no-spatial`` / ``--no-temporal``);
- **background** (paper Table 3): accuracy of the standard classifier (global average pooling +
  linear head, the one ``gradcam`` trains and ``f2f`` explains; the paper's Table 3 is about "a
  standard classifier (ResNet 50)") trained with / without background, tested with / without
  background, on the train and val splits.
- **sanity**: per data set and column, the model-parameter randomisation test of its runs
  (:mod:`wsbench.sanity`) and the columns with the same maps; a column that fails it is marked
  ``¶`` in the comparison and never ranked.

A *variant* is everything that determines a run's result except its seed and split seed
(method, options, fusion, data set, recipe, and whether a fixed split was re-split); cells
aggregate the runs of one variant over seeds × split seeds, and a configuration run again with the
same seed is one sample (its latest finished run; a footnote counts the re-runs ignored). Rows of
the comparison are data-set identities (name, resolved root, options, content fingerprint), so runs
on two data roots, or on data changed in between, never share a cell or an all-foreground
reference. Best values are marked ``best`` and second best ``second`` (bold and underlined when
rendered); a method that cannot run on a data set gets ``n/a`` with a footnote. On request
(``ci=True``, ``wsbench leaderboard --ci``) illegal-IoU cells get a 95 % bootstrap interval over
test videos, recomputed from the per-video counts in ``result.json`` by
:func:`wsbench.bootstrap.iou_interval`.
"""

from .model import METRIC_FORMS, METRICS, PAPER_ORDER, Cell, Table, grouped, method_columns
from .render import latex_escape, render
from .sanity_table import sanity
from .selection import SOURCE_KEYS, ablation_components, column_label, latest_runs, long_form
from .tables import ABLATION_COLUMNS, TABLES, ablation, background, build_tables, comparison, pairs

__all__ = [
    "ABLATION_COLUMNS",
    "METRICS",
    "METRIC_FORMS",
    "PAPER_ORDER",
    "SOURCE_KEYS",
    "TABLES",
    "Cell",
    "Table",
    "ablation",
    "ablation_components",
    "background",
    "build_tables",
    "column_label",
    "comparison",
    "grouped",
    "latest_runs",
    "latex_escape",
    "long_form",
    "method_columns",
    "pairs",
    "render",
    "sanity",
]
