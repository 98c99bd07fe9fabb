"""CLI command groups, one module each; ``aarlab.cli`` mounts them on one typer app."""
