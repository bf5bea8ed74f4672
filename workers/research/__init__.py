"""The research pipeline: leave-one-target-out evaluation of ranking methods, its metrics and
the results page — what ``taskrec evaluate`` runs over sweep matrices.

It stands apart from what the API serves (``workers.selection``: the rankers, the method
registry, evidence files, transfer results): only the command line imports it, never the API.
"""
