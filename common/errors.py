"""One exception type for every user mistake, so the CLI can print it as one clean line."""


class ConfigError(ValueError):
    """Raised before any work when the configuration or the inputs it names are wrong.

    The message says what is wrong and how to fix it; the CLI prints it without a traceback.
    """
