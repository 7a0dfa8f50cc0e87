"""The ``iqabench`` command line."""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import pkgutil
import sys
import warnings
from collections.abc import Sequence

import iqabench
from iqabench import commands, progress
from iqabench.errors import IQABenchError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iqabench", description="Benchmark harness for no-reference image quality assessment."
    )
    parser.add_argument("--version", action="version", version=f"iqabench {iqabench.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


#: file-system errors that are the machine's state, not a bug: reported in one line, not a traceback
#: (EEXIST: an --out that is a file, /dev/null; ENOENT: a folder that cannot be made, such as one under /proc or an
#: unwritable $HOME's cache)
USER_FIXABLE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                       errno.EISDIR, errno.ENAMETOOLONG, errno.EEXIST, errno.ENOENT}


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as ``iqabench: warning: ...`` lines, without the source line Python prints by default."""
    text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
    kind = "" if category in (UserWarning, RuntimeWarning) else f"{category.__name__}: "
    print(f"iqabench: warning: {kind}{text}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # iqabench says what it does; dependencies speak only to warn (their INFO lines are noise here)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("iqabench").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    progress.quiet_dependencies()
    progress.set_enabled(not getattr(args, "no_progress", False))
    warnings.showwarning = _one_line_warning
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # here, not at exit, so that a reader that went away is handled below
        return code
    except BrokenPipeError:
        return _reader_went_away()
    except IQABenchError as exc:
        print(f"iqabench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in USER_FIXABLE_ERRNOS:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"iqabench: error: {exc.strerror or exc}{where}. Results written before this are kept; fix it "
              "(free space, permissions, another --out) and run the same command again to resume.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("iqabench: interrupted; finished work is kept and a re-run resumes from it.", file=sys.stderr)
        return 130


def _reader_went_away() -> int:
    """The command's output was piped into a reader that stopped (``iqabench list | head``): stop quietly.

    Python's own advice for SIGPIPE: point stdout at /dev/null so the interpreter's final flush does not raise
    again, and exit as a process killed by SIGPIPE would (128 + 13).
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (a test's capture): nothing to flush
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())
