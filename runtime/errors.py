"""Errors the runtime reports as one clear line (the CLIs print them without a traceback)."""


class SanrtError(Exception):
    """Base class: a problem with the user's input, files or machine, not a bug."""


class ExportFolderError(SanrtError):
    """Not an sanrt export, incomplete, or its files do not match the manifest."""


class ImageError(SanrtError):
    """A missing, unreadable or unusable image."""


class BackendError(SanrtError):
    """A backend that is not installed or cannot run here."""


class RangeError(SanrtError):
    """Input shapes outside what the export (or engine profile) covers."""
