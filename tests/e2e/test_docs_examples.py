"""The docs run as written: every ```sh block of README.md's five-minute tour and of docs/admin-guide.md, in document
order, in bash with the exports `make run` printed, against one `make run` stack (its own ports, Azurite and tenant).

Conventions the docs follow (stated at the top of docs/admin-guide.md):
- a ```sh block is a shell example and is run; a block meant only to be read uses another language (```text, ```json);
- a ```text block right after a ```sh block is output the example shows: each of its lines must appear in what the
  block printed (runs of spaces count as one; `…` stands for text left out);
- a comment line `# exits N` says the block must exit N (otherwise 0);
- a comment `# run it again until …` says the block may be run again (up to RETRY_SECONDS) until it passes, as a
  person would when the app needs a few seconds.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.run_stack import REPO, Run, make_run, shell_env

TOUR = ("README.md", "### A five-minute tour")
ADMIN_GUIDE = ("docs/admin-guide.md", None)
BLOCK_SECONDS = 30.0
RETRY_SECONDS = 45.0
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
EXITS = re.compile(r"^\s*#\s*exits (\d+)\b", re.MULTILINE)
AGAIN = re.compile(r"#\s*run it again until", re.IGNORECASE)
# One terminal for the whole document, as a person has: each block starts with the variables the blocks before it
# set (kept in $DOCS_STATE), so `TS=...` in one block serves the next.
PRELUDE = r"""__before=" $(compgen -v | tr '\n' ' ') "
if [ -f "$DOCS_STATE" ]; then . "$DOCS_STATE"; fi
__save() {
  local v
  for v in $(compgen -v); do
    case "$__before" in *" $v "*) continue ;; esac
    case "$v" in __* | v | FUNCNAME | PIPESTATUS | BASH* | _) continue ;; esac
    declare -p "$v" 2>/dev/null || true
  done >"$DOCS_STATE"
}
trap __save EXIT
"""


@dataclass(frozen=True, slots=True)
class Example:
    """One ```sh block: where it is, what it runs, and the output the doc shows after it (if any)."""

    where: str
    code: str
    shown: str | None

    @property
    def exit_code(self) -> int:
        """`# exits N`, else 0."""
        found = EXITS.search(self.code)
        return int(found.group(1)) if found else 0

    @property
    def may_repeat(self) -> bool:
        """The doc says to run it again until it passes."""
        return bool(AGAIN.search(self.code))


def fenced(path: str, heading: str | None) -> list[tuple[int, str, str]]:
    """(line, language, text) of every fenced block in ``path``, or in the section under ``heading`` only."""
    lines = (REPO / path).read_text(encoding="utf-8").splitlines()
    first, last = 0, len(lines)
    if heading is not None:
        first = lines.index(heading)
        level = len(heading) - len(heading.lstrip("#"))
        last = next(
            (i for i in range(first + 1, len(lines)) if re.match(rf"^#{{1,{level}}} ", lines[i])),
            len(lines),
        )
    found: list[tuple[int, str, str]] = []
    i = first
    while i < last:
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent = len(opening["indent"])
        end = next(j for j in range(i + 1, last) if lines[j].strip() == "```")
        text = "\n".join(line[indent:] for line in lines[i + 1 : end])
        found.append((i + 1, opening["lang"], text))
        i = end + 1
    return found


def examples(path: str, heading: str | None) -> list[Example]:
    """The ```sh blocks of a doc (or section), each with the ```text block that directly follows it, if any."""
    blocks = fenced(path, heading)
    lines = (REPO / path).read_text(encoding="utf-8").splitlines()
    found = []
    for k, (line, lang, text) in enumerate(blocks):
        if lang != "sh":
            continue
        after = blocks[k + 1] if k + 1 < len(blocks) else None
        shown = None
        if after and after[1] == "text":
            end_of_block = next(j for j in range(line, len(lines)) if lines[j].strip() == "```")
            between = lines[end_of_block + 1 : after[0] - 1]
            shown = after[2] if all(not s.strip() for s in between) else None
        found.append(Example(f"{path}:{line}", text, shown))
    return found


EXAMPLES = examples(*TOUR) + examples(*ADMIN_GUIDE)


def squeeze(text: str) -> str:
    """Runs of whitespace as one space: the doc and a table of another width compare equal."""
    return " ".join(text.split())


def missing_output(example: Example, printed: str) -> list[str]:
    """The shown output's fragments that the example did not print."""
    if example.shown is None:
        return []
    got = squeeze(printed)
    fragments = [squeeze(part) for line in example.shown.splitlines() for part in line.split("…")]
    return [fragment for fragment in fragments if fragment and fragment not in got]


def attempt(example: Example, env: dict[str, str]) -> tuple[list[str], str]:
    """Run the block once: the problems found (none when it behaved as documented) and what it printed."""
    try:
        done = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", PRELUDE + example.code],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return [f"still running after {BLOCK_SECONDS:.0f} s"], out
    printed = done.stdout + done.stderr
    problems = [] if done.returncode == example.exit_code else [f"exit {done.returncode}, expected {example.exit_code}"]
    problems += [f"output lacks {fragment!r}" for fragment in missing_output(example, printed)]
    return problems, printed


def run_example(example: Example, env: dict[str, str]) -> None:
    """Run it (again, within RETRY_SECONDS, when the doc says so); fail with file:line, the block and its output."""
    deadline = time.monotonic() + (RETRY_SECONDS if example.may_repeat else 0)
    while True:
        problems, printed = attempt(example, env)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not problems, (
        f"{example.where}: the example does not behave as documented: {'; '.join(problems)}\n"
        f"--- the block ---\n{example.code}\n--- what it printed ---\n{printed}"
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[Run]:
    """One `make run` for every example in this module."""
    with make_run() as running:
        yield running


@pytest.fixture(scope="module")
def terminal(stack: Run, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The second terminal of the tour: the printed exports pasted, the venv active, a fixed width for tables."""
    home = tmp_path_factory.mktemp("terminal")  # TMPDIR too: files the examples write stay in the test's tmp
    own = {"COLUMNS": "120", "DOCS_STATE": str(home / "variables.sh"), "TMPDIR": str(home)}
    return shell_env(stack.exports()) | own


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.where for e in EXAMPLES])
def test_documented_example_runs_as_shown(example: Example, terminal: dict[str, str]) -> None:
    """The block exits as documented and prints the output the doc shows after it."""
    run_example(example, terminal)


def test_the_tour_and_the_admin_guide_have_examples_with_shown_output() -> None:
    """The tour posts a hire, the guide covers every CLI command, and most examples show what they print."""
    tour = [e for e in EXAMPLES if e.where.startswith("README.md")]
    guide = [e for e in EXAMPLES if e.where.startswith("docs/admin-guide.md")]
    assert any("hr/events" in e.code for e in tour), "the tour posts a signed hire"
    from licensing.cli.main import COMMANDS  # noqa: PLC0415  # every command the CLI has, now and later

    commands = {"policy check" if c == "policy" else c for c in COMMANDS} | {"seats --forecast", "status --recount"}
    used = {c for c in commands for e in guide if re.search(rf"\blicensing {c}\b", e.code)}
    assert used == commands, f"the admin guide has no runnable example of: {sorted(commands - used)}"
    assert sum(e.shown is not None for e in EXAMPLES) >= len(EXAMPLES) // 2


def test_one_shell_convention_in_the_tour_and_the_guide() -> None:
    """Shell examples are ```sh only: a ```bash or ```console block would silently not be run."""
    stray = [
        f"{path}:{line} ```{lang}"
        for path, heading in (TOUR, ADMIN_GUIDE)
        for line, lang, _ in fenced(path, heading)
        if lang in {"bash", "console", "shell", "zsh", ""}
    ]
    assert not stray, f"use ```sh (run by this test) or ```text (shown only): {stray}"


def test_an_example_whose_option_is_gone_fails_naming_its_line(terminal: dict[str, str]) -> None:
    """A documented option the CLI no longer has makes the example fail with its file:line and the CLI's words."""
    gone = Example("docs/admin-guide.md:1", "licensing sweep --csv report.csv", None)
    with pytest.raises(AssertionError, match=r"(?s)docs/admin-guide\.md:1: .*exit 2, expected 0.*unrecognized"):
        run_example(gone, terminal)


def test_shown_output_that_is_not_printed_fails() -> None:
    """Output a doc shows but the command does not print is reported, fragment by fragment around `…`."""
    example = Example("x.md:1", "true", "EMS … verified\nAssignmentVerified")
    assert missing_output(example, "EMS   liam  verified") == ["AssignmentVerified"]


def test_every_example_is_found_where_the_docs_are() -> None:
    """The docs the test reads exist and the tour heading is where the README has it."""
    assert (REPO / TOUR[0]).read_text(encoding="utf-8").splitlines().count(TOUR[1]) == 1
    assert (REPO / ADMIN_GUIDE[0]).is_file()
