"""Z3 proof obligations about the allocator's arithmetic, its lock order and its spec.

Bounded search says "no bug up to these bounds"; these obligations say "for every input".
One module per theme (``fit``, ``coalesce``, ``nodes``, ``lazy``, ``lock_order``, ``induction``),
each building ``Obligation`` objects; ``runner`` runs them for ``vmapcheck prove`` and the CI
proof job.  The arithmetic obligations run the functions of ``impl.intervals`` themselves on
symbolic values (``symbolic``), so what is proved is the code the designs call.

Relies on: ``z3``, ``impl`` and ``spec``; never on ``checker``.
"""
