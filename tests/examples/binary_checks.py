"""What the tests of each example binary check of the script as typed.

A binary runs fresh, from the repository root; `--help` and a bad flag
answer before TensorFlow is imported, a bad flag with one error line and
status 2; a clean run prints no native log line nor warning and nothing
on stderr.
"""

import os

from examples import quiet_start
from tests import fresh_process


def split_import_times(stderr):
    """`(lines of stderr other than -X importtime's, modules imported)`."""
    lines, imported = [], set()
    for line in stderr.splitlines():
        if line.startswith("import time:"):
            imported.add(line.rsplit("|", 1)[-1].strip())
        else:
            lines.append(line)
    return lines, imported


def run_script(script, *args, importtime=True, env=None, timeout=300):
    """`python [-X importtime] examples/<script> *args`, fresh, as typed
    in the repository root (no PYTHONPATH unless `env` sets one):
    `(result, stderr lines other than the import times, modules
    imported)`."""
    result = fresh_process.run_python(
        args=[
            *(["-X", "importtime"] if importtime else []),
            os.path.join("examples", script),
            *args,
        ],
        env={"PYTHONPATH": "", **(env or {})},
        timeout=timeout,
    )
    return (result, *split_import_times(result.stderr))


def assert_help_without_tensorflow(test, script, flag):
    """`script --help` exits 0 listing `flag`, without importing
    TensorFlow; returns the modules it imported."""
    result, errors, imported = run_script(script, "--help")
    test.assertEqual(result.returncode, 0, result.stderr[-2000:])
    test.assertIn(flag, result.stdout + "\n".join(errors))
    test.assertNotIn("tensorflow", imported)
    return imported


def assert_one_error_line(test, result, script, message, msg=None):
    """Status 2, nothing on stdout, and one line on stderr (import times
    aside): `<script>: error: ...` with `message` in it."""
    errors, _ = split_import_times(result.stderr)
    test.assertEqual(result.returncode, 2, msg or result.stderr[-2000:])
    test.assertEqual(result.stdout, "")
    test.assertLen(errors, 1, msg=result.stderr[-2000:])
    test.assertStartsWith(errors[0], f"{script}: error: ")
    test.assertIn(message, errors[0])


def assert_bad_flags_are_one_error_line(test, script, cases):
    """An unknown flag, and each `(args, message)` of `cases`: one error
    line with `message`, status 2, before TensorFlow is imported."""
    unknown = (["--bogus"], "Unknown command line flag 'bogus'")
    for args, message in (unknown, *cases):
        result, _, imported = run_script(script, *args)
        assert_one_error_line(test, result, script, message, msg=args)
        test.assertNotIn("tensorflow", imported, msg=args)


class CommandLineTests:
    """For a `tf.test.TestCase` of the binary `SCRIPT`: `--help` exits 0
    listing `HELP_FLAG` and imports none of `NOT_IMPORTED_BY_HELP`; an
    unknown flag and each `(args, message)` of `BAD_FLAGS` is one error
    line with status 2, before TensorFlow is imported."""

    SCRIPT = None
    HELP_FLAG = None
    NOT_IMPORTED_BY_HELP = ("tensorflow",)
    BAD_FLAGS = ()

    def test_help_exits_0_without_tensorflow(self):
        imported = assert_help_without_tensorflow(
            self, self.SCRIPT, self.HELP_FLAG
        )
        for module in self.NOT_IMPORTED_BY_HELP:
            self.assertNotIn(module, imported)

    def test_bad_flags_are_one_error_line_with_status_2(self):
        assert_bad_flags_are_one_error_line(self, self.SCRIPT, self.BAD_FLAGS)


def assert_quiet_run(test, result):
    """Status 0; no native log line nor warning; nothing on stderr."""
    test.assertEqual(result.returncode, 0, result.stderr[-3000:])
    output = result.stdout + result.stderr
    for line in output.splitlines():
        test.assertIsNone(quiet_start.NATIVE_LOG_LINE.match(line), line)
    test.assertNotIn("warning", output.lower())
    test.assertEqual(result.stderr, "")


def checkpoint_files(root_dir, directory="checkpoints"):
    """{name: bytes} of the checkpoint files of `root_dir/directory`."""
    directory = os.path.join(root_dir, directory)
    contents = {}
    for name in sorted(os.listdir(directory)):
        if name.startswith("ckpt-"):
            with open(os.path.join(directory, name), "rb") as file:
                contents[name] = file.read()
    return contents


def truncate_checkpoint(root_dir, number, keep=None):
    """Cuts `ckpt-<number>`'s data file to `keep` bytes (default half)."""
    data = os.path.join(
        root_dir, "checkpoints", f"ckpt-{number}.data-00000-of-00001"
    )
    with open(data, "rb") as file:
        content = file.read()
    with open(data, "wb") as file:
        file.write(content[: len(content) // 2 if keep is None else keep])
