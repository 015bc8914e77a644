"""``gldeblur`` command line: synth, train, eval, deblur. Errors are one line on stderr + exit code 1."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gldeblur", description="Global-local blur disentangling network")
    sub = p.add_subparsers(dest="command", required=True)
    _add_deblur(sub.add_parser("deblur", help="deblur image files or folders"))
    return p


# --- deblur ---------------------------------------------------------------------------------------
def _add_deblur(p: argparse.ArgumentParser) -> None:
    p.set_defaults(func=_deblur)


def _deblur(args: argparse.Namespace) -> int:
    raise NotImplementedError("gldeblur deblur: being written (issue 6)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("gldeblur: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:
        print(f"gldeblur {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
