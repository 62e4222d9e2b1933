"""Reading the JSON files sanrt's folders hold (manifest.json, engine.json): one clear error each."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import ExportFolderError


def read_json(path: Path):
    """The parsed JSON of `path`; ExportFolderError in one line when it is corrupt or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportFolderError(f"{path} is corrupt: {e}") from None
    except OSError as e:
        raise ExportFolderError(f"{path} cannot be read: {e.strerror or e}") from None
