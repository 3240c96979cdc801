"""Analyses that watch executions: the lock-order graph (lockdep) and lockset races (Eraser).

Each is an observer of the controlled runtime's events, so it sees every execution the search
explores; the lock-order graph also accepts nesting edges recorded by a stress run.
"""
