"""Directo's shared core: configuration, the system-of-record database and the command line."""
