"""taskrec service: settings, CLI, HTTP API, persistence and job queue.

Nothing here imports torch at module import time: engine calls are imported inside functions.
"""
