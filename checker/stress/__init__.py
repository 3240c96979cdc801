"""The threaded stress runner: the kernel's test_vmalloc cases on real threads, with lock_stat.

``workloads`` holds the test cases, ``vmallocinfo`` the busy-tree readers, ``runner`` runs one
design at one thread count, ``report`` prints and serialises the results, ``plot`` draws them,
``overhead`` measures what lock_stat costs.  ``vmapcheck stress`` is the command line.
"""
