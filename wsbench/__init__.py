"""wsbench: benchmark weakly supervised CAM methods for video segmentation in waste sorting.

A classifier trained to tell the *before* camera (prior to a human sorter) from the *after*
camera learns to look at the objects the sorter removes; its class activation maps become
segmentation masks of those "illegal" objects without any pixel labels.
"""

__version__ = "0.1.0"
