"""Where the read-only shared data lives: `../shared` beside the repository root, or, from a
worktree nested deeper, the nearest ancestor that holds it."""

from pathlib import Path


def find_shared(part=""):
    """The `shared` folder of the nearest ancestor whose `shared/<part>` exists; when none
    does, `../shared` from the repository root (tests then skip, naming that path)."""
    here = Path(__file__).resolve()
    for parent in here.parents[1:]:
        if (parent / "shared" / part).is_dir():
            return parent / "shared"
    return here.parents[1].parent / "shared"
