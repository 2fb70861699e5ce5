"""The one error type of the lab tooling."""


class LabError(Exception):
    """A lab could not be built, changed or inspected; the message says why."""
