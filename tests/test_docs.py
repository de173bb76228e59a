"""The code in README.md and docs/*.md works as written.

- Every ```python block runs in a fresh process, in an empty working
  directory, as a user pasting it would run it; it exits with status 0 and
  its standard error holds no warning (a line containing "Warning:", a
  `WARNING:tensorflow` or `WARNING:absl` log line, or "is deprecated").
- Every command naming `examples/<binary>.py` or `benchmarks/<binary>.py`,
  in a ```sh block or an inline code span, passes only flags the binary
  defines: its `--helpfull` (absl) or `--help` (argparse) output, run once
  per binary in a fresh process, must list each `--flag`. A `--flag` span in
  prose is checked against the binary named last before it in the same
  section. `make <target>` names a Makefile target; any other command in a
  ```sh block names a program that is installed.
- Every fenced block is python, sh or text, so none escapes these checks.
- Every relative link points to a file, and to a heading in it, that exists.
"""

from __future__ import annotations

import collections
import functools
import glob
import os
import re
import shlex
import shutil
from typing import Dict
from typing import Iterator
from typing import List
from typing import Set
from typing import Tuple

import pytest
import tensorflow as tf
from absl.testing import parameterized

from tests import fresh_process

_ROOT = fresh_process.REPO_ROOT
_DOCS = ["README.md"] + sorted(
    os.path.relpath(path, _ROOT)
    for path in glob.glob(os.path.join(_ROOT, "docs", "*.md"))
)
_LANGUAGES = ("python", "sh", "text")
# Each block costs 15-60 s on a 2-core machine; the whole suite has a budget.
_MAX_PYTHON_BLOCKS = 10

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.S | re.M)
_SPAN = re.compile(r"`([^`]+)`")
_BINARY = re.compile(r"(?:^|[\s/])((?:examples|benchmarks)/\w+\.py)\b")
_FLAG = re.compile(r"(?<![\w-])--([A-Za-z_]\w*)")
_HELP_FLAG = re.compile(r"--(?:\[no\])?([A-Za-z_]\w*)")
_WARNING = re.compile(r"Warning:|^WARNING:(?:tensorflow|absl)|is deprecated")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _read(doc: str) -> str:
    with open(os.path.join(_ROOT, doc), encoding="utf-8") as f:
        return f.read()


def _fences(doc: str) -> List[Tuple[str, str]]:
    return _FENCE.findall(_read(doc))


def _python_blocks() -> List[Tuple[str, int, str]]:
    blocks = []
    for doc in _DOCS:
        python = [body for lang, body in _fences(doc) if lang == "python"]
        blocks += [(doc, i, body) for i, body in enumerate(python)]
    return blocks


def _sections(doc: str) -> Iterator[Tuple[str, List[Tuple[str, str]]]]:
    """(heading, items) per section; items are ("sh", line) and ("span", text)
    in document order."""
    text = _read(doc)
    heading, items, position = "(top)", [], 0
    pieces = []
    for match in _FENCE.finditer(text):
        pieces.append(("prose", text[position : match.start()]))
        pieces.append((match.group(1), match.group(2)))
        position = match.end()
    pieces.append(("prose", text[position:]))
    for kind, body in pieces:
        if kind == "sh":
            body = body.replace("\\\n", " ")
            for line in body.splitlines():
                line = re.sub(r"(^|\s)#.*$", "", line).strip()
                if line:
                    items.append(("sh", line))
        elif kind == "prose":
            # A heading starts a section; spans may cross line breaks.
            for part in re.split(r"^(#+ .*)$", body, flags=re.M):
                if re.match(r"#+ ", part):
                    yield heading, items
                    heading, items = part, []
                else:
                    items += [("span", s) for s in _SPAN.findall(part)]
    yield heading, items


def _uses() -> tuple:
    """Flag uses per binary, binaries named, make lines, other sh commands."""
    flag_uses: Dict[str, List[Tuple[str, str]]] = collections.defaultdict(list)
    named_binaries: Set[str] = set()
    make_lines, commands = [], []
    for doc in _DOCS:
        for heading, items in _sections(doc):
            binary = None
            for kind, text in items:
                found = _BINARY.search(text)
                if found:
                    binary = found.group(1)
                    named_binaries.add(binary)
                    flags = _FLAG.findall(text[found.end() :])
                elif text.startswith("--") and binary and kind == "span":
                    flags = _FLAG.findall(text)
                else:
                    flags = []
                    if re.match(r"make\b", text):
                        make_lines.append((doc, text))
                    elif kind == "sh":
                        commands.append((doc, text))
                if flags:
                    where = f"{doc}, {heading}"
                    flag_uses[binary] += [(f, where) for f in flags]
    return flag_uses, named_binaries, make_lines, commands


_FLAG_USES, _BINARIES, _MAKE_LINES, _SH_COMMANDS = _uses()


@functools.cache
def _defined_flags(binary: str) -> Set[str]:
    """Flag names a binary's help lists (absl --helpfull, else --help)."""
    for option in ("--helpfull", "--help"):
        result = fresh_process.run_python(
            args=[os.path.join(_ROOT, binary), option], timeout=300
        )
        names = set(_HELP_FLAG.findall(result.stdout))
        if names - {"help", "helpfull"}:
            return names
    raise AssertionError(
        f"{binary} --helpfull/--help listed no flags:\n{result.stderr[-3000:]}"
    )


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = heading.lstrip("#").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(doc: str) -> Set[str]:
    text = _FENCE.sub("", _read(doc))
    anchors, seen = set(), collections.Counter()
    for heading in re.findall(r"^#+ .*$", text, re.M):
        slug = _slug(heading)
        anchors.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return anchors


_BLOCKS = _python_blocks()


class DocsStructureTest(tf.test.TestCase):
    def test_python_blocks_within_budget(self):
        self.assertBetween(len(_BLOCKS), 1, _MAX_PYTHON_BLOCKS)

    def test_every_fence_has_a_checked_language(self):
        for doc in _DOCS:
            for lang, body in _fences(doc):
                self.assertIn(lang, _LANGUAGES, f"{doc}:\n{body[:200]}")

    def test_relative_links_resolve(self):
        for doc in _DOCS:
            text = _FENCE.sub("", _read(doc))
            for target in _LINK.findall(text):
                if re.match(r"[a-z]+:", target):
                    continue
                path, _, anchor = target.partition("#")
                path = os.path.normpath(
                    os.path.join(os.path.dirname(doc), path) if path else doc
                )
                self.assertTrue(
                    os.path.exists(os.path.join(_ROOT, path)),
                    f"{doc}: link to {target}",
                )
                if anchor:
                    self.assertIn(anchor, _anchors(path), f"{doc}: {target}")

    def test_named_binaries_exist(self):
        self.assertNotEmpty(_BINARIES)
        for binary in _BINARIES:
            self.assertTrue(os.path.isfile(os.path.join(_ROOT, binary)), binary)

    def test_make_targets_exist(self):
        makefile = _read("Makefile")
        targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
        self.assertNotEmpty(_MAKE_LINES)
        for doc, line in _MAKE_LINES:
            for target in line.split()[1:]:
                self.assertIn(target, targets, f"{doc}: {line}")

    def test_other_commands_name_installed_programs(self):
        bin_dir = os.path.join(_ROOT, ".venv", "bin")
        made = collections.defaultdict(set)  # doc -> venvs a command makes
        for doc, line in _SH_COMMANDS:
            words = shlex.split(line)
            while words and re.match(r"\w+=", words[0]):
                words.pop(0)  # VAR=value before the program
            program = words[0]
            if "venv" in words[1:-1] and words[words.index("venv") - 1] == "-m":
                made[doc].add(words[-1].rstrip("/"))
            found = (
                os.path.exists(os.path.join(_ROOT, program))
                or program.split("/bin/")[0] in made[doc]
                if "/" in program
                else shutil.which(program, path=bin_dir)
                or shutil.which(program)
            )
            self.assertTrue(found, f"{doc}: {line}")


@pytest.mark.slow
class DocsBinaryFlagsTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(*sorted(_FLAG_USES))
    def test_flags_are_defined(self, binary):
        defined = _defined_flags(binary)
        for name, where in _FLAG_USES[binary]:
            negation = name.startswith("no") and name[2:] in defined
            if name in defined or negation:
                continue
            self.fail(f"{binary} defines no --{name} ({where})")


@pytest.mark.slow
class DocsPythonBlocksTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(*range(len(_BLOCKS)))
    def test_block_runs_as_written(self, index):
        doc, number, code = _BLOCKS[index]
        result = fresh_process.run_python(
            code, cwd=self.get_temp_dir(), timeout=600
        )
        where = f"{doc}, python block {number}:\n{code}"
        self.assertEqual(
            result.returncode, 0, f"{where}\n{result.stderr[-4000:]}"
        )
        warnings = [
            line for line in result.stderr.splitlines() if _WARNING.search(line)
        ]
        self.assertEmpty(warnings, f"{where}\nstderr warnings:\n{warnings}")
