"""Dataset loaders: raw files from registry packages -> labelled W2S rows, one per task."""
