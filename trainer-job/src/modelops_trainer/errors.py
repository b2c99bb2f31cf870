"""The one exception the trainer raises for bad input."""


class TrainingError(Exception):
    """Bad training input. The message is one line that says what is wrong and how to fix it;
    the CLI prints it as `error: <message>` and writes it to the termination message."""
