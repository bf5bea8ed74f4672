"""The internal dashboard: server-rendered pages under ``/dashboard`` on the API's own services.

Pages sign in with an API key once and then ride a signed session cookie; every page reads
through the same domain services (and so the same access rules) as ``/v1``.
"""
