# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""Run the package's tests, one line per test for the repository's test
runner (tests/e2e/94-python-agent.sh turns them into result lines):

    PASS test_x (test_module.Class)
    FAIL test_x (test_module.Class): the first line of the failure
    SKIP test_x (test_module.Class): the reason

    python3 tests/run.py        # from agents/python, with vigil_agent importable

Exit status 0 iff nothing failed.
"""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class LineResult(unittest.TestResult):
    def _line(self, word, test, detail=""):
        print("%s %s%s" % (word, test.id().split(".", 1)[-1], ": " + detail if detail else ""),
              flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._line("PASS", test)

    def _last_line(self, err):
        text = self._exc_info_to_string(err, None).strip().splitlines()
        sys.stderr.write("\n".join(text) + "\n")
        return text[-1] if text else "?"

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line("FAIL", test, self._last_line(err))

    def addError(self, test, err):
        super().addError(test, err)
        self._line("FAIL", test, self._last_line(err))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line("SKIP", test, reason)


def main():
    sys.path.insert(0, HERE)
    suite = unittest.defaultTestLoader.discover(HERE, top_level_dir=HERE)
    result = LineResult()
    suite.run(result)
    return 0 if result.wasSuccessful() and result.testsRun else 1


if __name__ == "__main__":
    sys.exit(main())
