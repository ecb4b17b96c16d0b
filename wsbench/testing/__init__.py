"""The contracts every method, flow estimator and data set keeps, as pytest base classes.

wsbench's own tests run them over every built-in entry of the registries; a plugin gets the same
checks by subclassing one in its tests and naming its entry::

    from wsbench.testing import MethodContract

    class TestMine(MethodContract):
        name = "mine"          # the registered name
        options = {"frames": 3}  # optional: the options to build it with

:class:`FlowContract` and :class:`DatasetContract` work the same way (a data set also writes a
tiny example of its layout, :meth:`DatasetContract.write_example`). Each contract builds what it
checks from a ``spec`` fixture, ``(name, options)`` from the class attributes by default; a test
module overrides that fixture with ``params`` to run one contract over many entries.

This package imports pytest and is imported by tests only: nothing else in wsbench imports it, so
wsbench itself never needs pytest.
"""

from __future__ import annotations

from .datasets import DatasetContract
from .flows import FlowContract, textured_pair
from .methods import MethodContract

__all__ = ["MethodContract", "FlowContract", "DatasetContract", "textured_pair"]
