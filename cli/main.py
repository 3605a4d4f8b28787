"""Console entry point: ``ds``.

A plain ``ds status`` (optionally with ``-C DIR``) on an unchanged folder is answered
here, before typer and the command modules are imported: that import alone costs more
than checking 20,000 files. Any other command, option or any doubt takes the full path.
"""

import sys


def _quick_status(argv: list[str]) -> bool:
    """Print the clean answer and return True if ``argv`` is a plain status of a clean folder."""
    if argv[:1] == ["-C"] and len(argv) == 3:
        folder, rest = argv[1], argv[2:]
    else:
        folder, rest = ".", argv
    if rest != ["status"]:
        return False
    import os

    from objstore.quickstatus import quick_clean

    try:
        clean = quick_clean(os.path.abspath(folder))
    except Exception:  # any surprise: the full command reports it properly
        return False
    if clean:
        sys.stdout.write("Nothing changed.\n")
    return clean


def main() -> None:
    if _quick_status(sys.argv[1:]):
        return
    from .app import main as full_main

    full_main()


if __name__ == "__main__":
    main()
