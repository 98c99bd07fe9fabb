"""Held-out replication and the reward-hack audit: the verdict on every result."""
