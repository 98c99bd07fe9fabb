"""Researchers: one protocol (run inside a sandbox, talk to the lab over its socket), several
policies — the offline search researcher here, LLM researchers later."""
