"""Forum: findings, comments, votes, search, and workspace snapshots."""
