"""What every contract shares: the entry under test, as a ``spec`` fixture."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest


class Contract:
    """The registry entry a contract checks.

    Attributes:
        name: the entry's registry name.
        options: its options for the checks.
    """

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}

    @pytest.fixture
    def spec(self) -> tuple[str, dict[str, Any]]:
        """``(name, options)`` of the entry under test; override with ``params`` to check many."""
        return self.name, dict(self.options)
