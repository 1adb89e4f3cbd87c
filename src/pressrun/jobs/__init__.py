"""Batch jobs: dispatching items to the renderer, archives of their outputs."""
