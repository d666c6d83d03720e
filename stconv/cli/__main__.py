"""``python -m stconv.cli``: the ``stconv`` command."""

from stconv.cli import entry_point

entry_point()
