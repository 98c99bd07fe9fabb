"""Tasks: the catalogue, dataset loaders, and building a kit plus its private answer key."""
