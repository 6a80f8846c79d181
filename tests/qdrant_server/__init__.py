"""Qdrant-compatible test server package (server runs as a subprocess; see client.py)."""
