"""The lab: starts the server and N researchers in sandboxes, enforces budgets, reports."""
