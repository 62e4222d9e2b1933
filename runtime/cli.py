"""The one way sanrt's command-line tools end: a user's mistake is one `error:` line and exit code 2,
Ctrl-C or SIGTERM (docker stop, systemd) one `interrupted` line and exit code 130, with whatever the
tool was writing left out (each tool writes through sanrt.runtime.outputs: atomic files, folders
built aside); never a traceback for either."""
from __future__ import annotations

import signal
import sys
import threading


def _terminate(signum, frame):
    raise KeyboardInterrupt  # unwinds like Ctrl-C: finally blocks remove partial files


def run(main, argv=None, errors=()) -> int:
    """main(argv) -> exit code, with SanrtError (and `errors`) as one line and exit 2."""
    from .errors import SanrtError

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    else:
        previous = None
    try:
        return main(argv)
    except (SanrtError, *errors) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was left", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
