"""chaosgate: chaos-engineering harness for API and AI gateways."""

__version__ = "0.1.0"
