"""Ranking library tasks for a target through FAISS indexes, fused as the engine fuses them."""
