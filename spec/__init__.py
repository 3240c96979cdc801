"""Abstract state machines of each design's lock protocol and address ownership.

Imports nothing else of the project.  ``program`` holds the operations a model thread runs,
shared by the spec explorer and the checker's scenarios.
"""
