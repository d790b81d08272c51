"""The Examples in the clinical core's docstrings run and give what they show.

The core's docstrings are its reference documentation; an example that no longer runs is a
wrong document. (`make test` and `make test-fast` run this file like any other.)
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ketaclinic.clinical

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _clinical_modules() -> list[str]:
    names = [ketaclinic.clinical.__name__]
    for info in pkgutil.walk_packages(ketaclinic.clinical.__path__, "ketaclinic.clinical."):
        names.append(info.name)
    return sorted(names)


def _examples(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module_name)
    return [t for t in tests if t.examples]


MODULES_WITH_EXAMPLES = [m for m in _clinical_modules() if _examples(m)]


def test_the_core_documents_its_public_functions_with_examples():
    assert len(MODULES_WITH_EXAMPLES) >= 10, MODULES_WITH_EXAMPLES
    assert "ketaclinic.clinical.km" in MODULES_WITH_EXAMPLES


@pytest.mark.parametrize("module_name", MODULES_WITH_EXAMPLES)
def test_docstring_examples_give_what_they_show(module_name):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in _examples(module_name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
    assert result.attempted > 0
