"""vmapcheck's checker: runtimes, explorers, analyses, reports and the command line.

May import ``impl`` and ``spec``; neither imports this package.
"""

from impl import __version__

__all__ = ["__version__"]
