"""The Room Calendar Connector's domain. Never imports azure.functions."""

__version__ = "0.1.0"
