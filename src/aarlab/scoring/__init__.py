"""The scoring server: the one place that opens answer keys.

Pure rules (``ladder``, ``probes``, ``budgets``) are apart from I/O (``service``, ``routes``).
"""
