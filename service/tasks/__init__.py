"""Submitted tasks: uploads validated whole by the engine, stored as artefacts, listed, deleted."""
