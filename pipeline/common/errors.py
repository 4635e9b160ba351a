"""The one base class of failures a user can fix (bad params, bad data, no credentials).

Stages turn these into a clear message and exit code 1; anything else is a bug and keeps
its traceback.
"""


class PipelineError(Exception):
    """A failure with a message written for the user."""
