"""Tasks: a public kit a researcher may see, and a private answer key only the scorer opens."""
