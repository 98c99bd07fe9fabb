"""Researchers the lab runs: the offline search researcher and LLM researchers (``llm/``)."""
