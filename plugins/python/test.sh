#!/usr/bin/env bash
# Native unit tests of the Python plugins (plugins/python/tests, unittest; componentize-py
# generates the WIT bindings they import, so it is installed first when missing). The built
# component is tested by plugins/js/test.sh (the counter contract suite, run on the component
# through jco).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/toolchain.sh"
need_componentize_py >/dev/null
PYTHONDONTWRITEBYTECODE=1 python3 - "$here/tests" <<'PY'
import sys, unittest
suite = unittest.defaultTestLoader.discover(sys.argv[1])
result = unittest.TextTestRunner(stream=sys.stdout, verbosity=1).run(suite)
failed = len(result.failures) + len(result.errors)
print(f"python: {result.testsRun - failed - len(result.skipped)} passed, {failed} failed, {len(result.skipped)} skipped")
sys.exit(0 if result.wasSuccessful() else 1)
PY
