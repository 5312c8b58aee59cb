"""realism: an HTTP proxy in front of a local AWS emulator that adds what AWS does and the
emulator does not: request validation against botocore's models, AWS's timing (eventual
consistency, resources that take minutes), and transient faults.  See docs/realism.md."""

__version__ = "1.0.0"
