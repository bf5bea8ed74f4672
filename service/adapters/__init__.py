"""The adapter library over HTTP: trained source adapters, listed and deleted (admins)."""
