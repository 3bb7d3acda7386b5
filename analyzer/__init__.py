"""mailflow-analyzer: offline analysis of Exchange Online mail flow."""

__version__ = "0.1.0"
