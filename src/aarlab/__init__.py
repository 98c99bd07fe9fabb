"""aarlab: an automated alignment research lab for weak-to-strong supervision."""

__version__ = "0.1.0"
