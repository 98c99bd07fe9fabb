"""Model backends: rows -> features (encoders) and, for causal LMs, label-token scores."""
