"""Scripts that run inside the throwaway mathematics-dataset venv (not imported by aarlab)."""
