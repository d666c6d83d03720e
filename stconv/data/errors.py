"""The error every data module raises on bad input."""


class DataError(ValueError):
    """Bad input data or data options; the message names the file, variable or option."""
