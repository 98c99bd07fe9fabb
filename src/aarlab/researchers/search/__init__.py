"""The offline search researcher: explores method space with the method library, no LLM."""
