"""Lets one pytest process import several example binaries.

Each binary defines its absl flags at import, as tf-agents examples do, and
several define the same names (`gamma`, `lambda_`, `root_dir`, ...). Tests
call `train_eval(...)` directly and never parse flags, so before a test
module (and the example it imports) is collected, the flags that earlier
example modules defined are forgotten.
"""

import pytest
from absl import flags


def _forget_example_flags() -> None:
    by_module = flags.FLAGS.flags_by_module_dict()
    for module_name, module_flags in list(by_module.items()):
        if module_name.split(".")[0] != "examples":
            continue
        # A copy: deleting a flag also removes it from absl's module lists.
        for flag in list(module_flags):
            if flag.name in flags.FLAGS:
                delattr(flags.FLAGS, flag.name)


def pytest_collectstart(collector):
    # Runs right before a test module is imported.
    if isinstance(collector, pytest.Module):
        _forget_example_flags()
