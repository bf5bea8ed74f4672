"""Owners, hashed API keys, the admin role and per-key rate limits."""
