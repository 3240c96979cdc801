"""Abstract state machines of each design's lock protocol and address ownership.

Imports nothing else of the project.  ``program`` holds the operations a model thread runs,
shared by the spec explorer and the checker's scenarios.  The rest:

- ``protocol``: the vocabulary a spec is written in (critical sections, sync operations);
- ``compile``, ``steps``, ``views``: the compiler from protocol tables to step closures over
  flat tuple states, and the invariants common to every spec;
- ``global_``, ``nodes``, ``percpu``: the three designs' specs; ``mutants``: protocol mutants;
- ``explorer``: breadth-first exploration with symmetry reduction, deadlock and invariant
  checks, ``sometimes`` properties; ``registry``: specs by name; ``manifest``: the state-count
  regression oracle (``manifest.json``).
"""
