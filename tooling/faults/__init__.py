"""Fault-injection tools for the fault suite and the soak command: never used by the workers."""
