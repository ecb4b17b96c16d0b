"""The second stage: a fully supervised segmenter trained on a finished run's pseudo-labels (``wsbench distill``).

1. **Pseudo-labels.** Every frame of the source run's **train** split gets the run's own mask in
   the three-label domain, exactly as ``wsbench export`` writes it: the run's maps
   (:meth:`~wsbench.maps.MapProducer.video`: its classifier, method, multi-scale/flip
   inference and fusion) cut at its val-chosen threshold with the cached foreground
   (:func:`~wsbench.inference.label_mask`: 0 background, 1 legal, 2 illegal); *after* frames are
   legal + background. They are computed at the segmenter's training resolution. With an
   **ignore band** ``(low, high)``, foreground pixels of *before* frames whose map lies in
   ``[low, high)`` get :data:`IGNORE` and are not trained on.
2. **Training.** A segmentation_models_pytorch network (architecture by name, encoder by name:
   ``tu-<timm model>`` for any timm backbone) learns the labels from the **original** frames (no
   background model at inference) with cross-entropy + Dice (smp's ``DiceLoss``), both ignoring
   :data:`IGNORE`; a fixed number of epochs, AdamW with a one-cycle schedule, horizontal flips. A
   checkpoint is written after every epoch, so ``--resume`` continues an interrupted run and ends
   with the weights an uninterrupted one would have. No GT mask is read for training or model
   selection.
3. **Scoring.** The segmenter's probability of *illegal* is presented to the evaluator as a
   method's maps (:class:`SegmenterMaps`), so :func:`wsbench.evaluate.evaluate_maps` scores it
   exactly like a CAM run: threshold chosen on val, test IoU, mIoU, stability, the authors'
   protocol (the class maps are the three class probabilities), maps frames/s. The quality of the
   pseudo-labels themselves on the train split (where masks exist) is recorded beside it
   (:func:`wsbench.evaluate.split_iou`, an evaluation only).

The result is a run directory like any other, with ``config.json`` naming the source run and its
configuration hash, ``result.json``, ``checkpoint.pt`` while training and ``segmenter.pt`` after;
it is started or resumed, scored and recorded by the run lifecycle of :mod:`wsbench.runs`, as a CAM
run is, and :func:`wsbench.runs.is_distilled` tells it apart.

Modules: ``recipe`` (the distill recipe), ``labels`` (pseudo-labels, the ignore band), ``segmenter``
(the network and its maps), ``training`` (the segmenter's training loop), ``loading`` (a finished
distilled run, to segment with), ``lifecycle`` (:func:`distill`), ``reference`` (:func:`supervised_reference`:
the same segmenter trained on the val split's GT masks, a reference for the tables).
"""

from .labels import IGNORE, ignore_band_labels, ignore_band_warning, pseudo_labels
from .lifecycle import distill, distill_hash, distill_once, finished_distilled
from .loading import DistilledRun, distilled_record, load_distilled
from .recipe import DISTILL_RECIPES, DistillRecipe, distill_recipe
from .reference import ReferenceData, supervised_reference
from .segmenter import SegmenterMaps, SegmenterNet
from .training import one_cycle

__all__ = ["DISTILL_RECIPES", "IGNORE", "DistillRecipe", "DistilledRun", "ReferenceData", "SegmenterMaps",
           "SegmenterNet", "distill", "distill_hash", "distill_once", "distill_recipe", "distilled_record",
           "finished_distilled", "ignore_band_labels", "ignore_band_warning", "load_distilled", "one_cycle",
           "pseudo_labels", "supervised_reference"]
