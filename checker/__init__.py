"""vmapcheck's checker: runtimes, explorers, analyses, reports and the command line.

May import ``impl`` and ``spec``; neither imports this package.  ``checker.model_check`` is the
Python API of ``vmapcheck model-check --target impl``.
"""

from impl import __version__

from .model_check import model_check

__all__ = ["__version__", "model_check"]
