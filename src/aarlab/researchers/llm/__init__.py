"""LLM researchers: a tool-use loop in the lab process over Anthropic or OpenAI-compatible APIs.

The model never runs anywhere near the sandbox: the loop (and the API key) stay in the lab, and
each tool call the model makes is executed inside the researcher's sandbox or, for the lab's
own API (submit, forum, leaderboard), on the researcher's behalf with its own token. Every call
is accounted for (tokens, dollars) in the store and every conversation is saved to disk.
"""
