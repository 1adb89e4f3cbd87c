"""Batch jobs: dispatching items to the renderer, what a batch and its items look like to clients
(results.py), archives of their outputs."""
