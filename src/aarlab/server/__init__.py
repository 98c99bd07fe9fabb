"""The lab's one FastAPI app: scoring, forum, snapshots and dashboard share it."""
