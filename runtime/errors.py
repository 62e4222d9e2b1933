"""The one exception family for everything a user can cause (the CLIs print it as one `error:` line,
exit code 2). Anything else that escapes is a bug in sanrt."""


class SanrtError(Exception):
    """Base class: a problem with the user's input, files or machine, not a bug."""


class ExportFolderError(SanrtError):
    """Not an sanrt export, incomplete, or its files do not match the manifest."""


class ImageError(SanrtError):
    """A missing, unreadable or unusable image."""


class BackendError(SanrtError):
    """A backend that is not installed or cannot run here, or a backend x precision pair that does not exist."""


class RangeError(SanrtError):
    """Input shapes outside what the export (or engine profile) covers."""


class VocabularyError(SanrtError, ValueError):
    """A vocabulary that cannot be used (empty, blank or duplicate names, an unreadable file)."""


class OutputError(SanrtError):
    """An output that cannot be written, or would replace a file this run did not write."""


class ConfigError(SanrtError, ValueError):
    """A model config file (fixture tiny_config.json) that is missing, unreadable or incomplete."""


class VideoError(SanrtError):
    """A video file, stream or capture device that cannot be opened or read (not a video, no video
    stream, a codec PyAV cannot decode, an unreachable URL, a file cut short)."""


def first_line(e: BaseException) -> str:
    """The first non-blank line of an exception's message (or its type's name): third-party errors
    (pyarrow, Ray, OpenVINO, numpy) carry long, many-line messages; sanrt says one line."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__
