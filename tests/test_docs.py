"""The README and the manual in docs/: every relative link resolves (to a file,
and to a heading where it names one), and every ``stconv ...`` command line
they show parses with the current command line, its values included."""

import re
import shlex
from pathlib import Path

import pytest

from stconv import cli

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
# `stconv` as a program (a path may lead to it), then its arguments.
COMMAND = re.compile(r"(?<![\w./-])(?:[\w.-]*/)*stconv\s+(?=(.+))")
SHELL_LANGUAGES = ("bash", "sh", "shell", "console", "")


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text())
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


def test_the_manual_has_its_pages_and_the_readme_is_a_quickstart():
    names = {path.stem for path in PAGES}
    assert {"index", "command-line", "python-api", "data", "models", "metrics", "distributed",
            "performance", "reproducing", "files-and-errors", "extending"} <= names  # fmt: skip
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_every_relative_link_resolves(path):
    for target in links(path):
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{page_id(path)}: {target} does not exist"
        if anchor:
            assert anchor in anchors(linked), f"{page_id(path)}: {target} names no heading"


def command_lines(path: Path) -> list[str]:
    """The arguments of every ``stconv`` command line of ``path``: in shell code
    blocks (continued lines joined; up to a shell operator, quote or comment),
    and in inline code that gives a command at least one argument."""
    text = path.read_text()
    found = []
    for language, block in FENCE.findall(text):
        if language not in SHELL_LANGUAGES:
            continue
        for line in block.replace("\\\n", " ").splitlines():
            for match in COMMAND.finditer(line):
                found.append(re.split(r"&&|;|\||\"| &|&$| #", match.group(1))[0])
    for span in INLINE.findall(FENCE.sub("", text)):
        match = COMMAND.match(span)
        if match and len(match.group(1).removesuffix("...").split()) >= 2:
            found.append(match.group(1).removesuffix("..."))
    return [line for line in found if re.match(r"([a-z][a-z-]*|--[a-z-]+)(\s|$)", line)]


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_every_command_line_shown_parses(path):
    for line in command_lines(path):
        argv = shlex.split(line)
        try:
            args = cli.parser().parse_args(argv)
        except SystemExit as exit_:
            assert exit_.code == 0, f"{page_id(path)}: `stconv {line}` does not parse"
            continue  # --help
        if args.command == "train":
            cli.config_from_args(args)  # every value checked, as `stconv train` does


def test_the_command_line_check_can_fail():
    page = ROOT / "docs" / "command-line.md"
    assert any(line.startswith("train ") for line in command_lines(page))
    bad = cli.parser().parse_args(shlex.split("train --workdir w --model unet"))
    with pytest.raises(ValueError, match="model 'unet' is unknown"):
        cli.config_from_args(bad)
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["train", "--epoch", "3"])
