"""Seeded-bug variants ("mutants") of the designs: the catalog that proves the checker's power.

Each mutant is a design of its own, subclassing the design it breaks, with class attributes:
``mutant_of`` (the correct design), ``bug`` (what is wrong), ``source`` (the kernel bug of
reference section 6 it mirrors, or the classic mistake), ``expected`` (the finding kind the
checker must report) and ``catalog`` (the bounds to check it with, a plain dict that the checker
reads; ``impl`` knows nothing of the checker): either the default scenario's parameters
(``threads``, ``ops``, ``pages``, ``lazy_max``, ``cpus``, ``sizes``) or ``threads`` as a list of
per-thread operation lists (written as scenario files write them) with a ``config`` table;
optionally ``preemption_bound`` and ``max_executions``.
"""
