"""The one way sanrt's command-line tools end: a user's mistake is one `error:` line and exit code 2,
Ctrl-C or SIGTERM (docker stop, systemd) one `interrupted` line and exit code 130, with whatever the
tool was writing left out (each tool writes through sanrt.runtime.outputs: atomic files, folders
built aside); never a traceback for either."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its usage errors as one `error:` line (exit code 2, as argparse's own)."""

    def error(self, message):
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


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


class _ExportOption(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        if option_string != "--export":
            print(f"notice: {option_string} is now --export (the old spelling still works)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_export_argument(ap: argparse.ArgumentParser, **kwargs) -> None:
    """--export: an sanrt export folder, as every tool but infer.py names it (infer.py's --engine runs an
    export or a TensorRT engine folder). --engine and --onnx, the older spellings, still work."""
    kwargs.setdefault("help", "an sanrt export folder (export/to_onnx.py)")
    ap.add_argument("--export", "--engine", "--onnx", dest="export", type=Path, action=_ExportOption, **kwargs)


def add_vocabulary_arguments(ap: argparse.ArgumentParser) -> None:
    """The vocabulary, as every tool that segments takes it: one of --vocab, --vocab-file, --dataset,
    and --expand (read back with vocabulary_names)."""
    from sanrt.runtime.datasets import DATASETS, EXPANSIONS

    vocab = ap.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--vocab", help='comma-separated class names, e.g. "cat,sofa,floor"')
    vocab.add_argument("--vocab-file", type=Path, help="one class name a line")
    vocab.add_argument("--dataset", help=f"built-in vocabulary: {', '.join(DATASETS)}")
    ap.add_argument("--expand", default="none", choices=["none", *EXPANSIONS],
                    help="vocabulary expansion as SAN's demo: distractor names (COCO-Stuff's 171 classes or its 91 stuff "
                         "classes) whose pixels are labelled K, 'other' (default none)")


def vocabulary_names(args) -> list[str]:
    """The class names add_vocabulary_arguments' options name, checked (VocabularyError otherwise)."""
    from sanrt.runtime import check_vocabulary, dataset_vocabulary, read_vocabulary_file

    if args.vocab is not None:
        return check_vocabulary(args.vocab.split(","))
    if args.vocab_file is not None:
        return read_vocabulary_file(args.vocab_file)
    return dataset_vocabulary(args.dataset)
