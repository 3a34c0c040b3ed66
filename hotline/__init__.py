"""The 12345 hotline application: settings, web assembly, CLI and channels."""

__version__ = "0.1.0"
