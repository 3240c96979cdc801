"""Runtimes that ship with the allocator: ``plain`` (one thread) and ``threads`` (real threads).

The controlled and virtual-time runtimes belong to the checker (``checker/runtimes``).
"""
