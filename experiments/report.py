"""What the experiment scripts that write a Markdown report share: the
commit they run at, and writing the report."""

import os

from stconv.runs.provenance import code_version


def current_commit() -> str:
    """stconv's short commit, marked where the tree has uncommitted changes."""
    version = code_version()
    if version["commit"] is None:
        return "an installed copy (no commit)"
    return version["commit"][:7] + (" with uncommitted changes" if version["dirty"] else "")


def write_markdown(path: str, lines: list[str]) -> None:
    """Writes the report's ``lines`` to ``path`` (its folder created) and prints them."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
