"""vmapcheck's executable vmap-area allocator: address arithmetic, trees, designs, runtime seam.

Imports nothing else of the project; the checker, the proofs and the stress runner import it.
"""

__version__ = "0.1.0"
