"""Weak-to-strong tasks built from real text that ships inside registry packages."""
