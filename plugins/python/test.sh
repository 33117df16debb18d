#!/usr/bin/env bash
# Native unit tests of the Python plugins (plugins/python/tests, unittest; componentize-py
# generates the WIT bindings they import, so it is installed first when missing), then the SDK as a
# package: a wheel of plugins/python/sdk (PyPI `arkflow-plugin`, pyproject.toml there), built from
# source with pip (its build backend, flit_core, comes from PyPI), must hold every module of
# sdk/arkflow and declare version 0.2.0. The built component is tested by plugins/js/test.sh (the
# counter contract suite, run on the component through jco).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../toolchain/python.sh"
need_componentize_py >/dev/null
PYTHONDONTWRITEBYTECODE=1 python3 - "$here/tests" <<'PY'
import sys, unittest
suite = unittest.defaultTestLoader.discover(sys.argv[1])
result = unittest.TextTestRunner(stream=sys.stdout, verbosity=1).run(suite)
failed = len(result.failures) + len(result.errors)
print(f"python: {result.testsRun - failed - len(result.skipped)} passed, {failed} failed, {len(result.skipped)} skipped")
sys.exit(0 if result.wasSuccessful() else 1)
PY

echo "== SDK package: wheel of plugins/python/sdk"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
python3 -m pip wheel --quiet --no-deps -w "$wheels" "$here/sdk"
python3 - "$here/sdk" "$wheels"/*.whl <<'PY'
import os, sys, zipfile
sdk, wheel = sys.argv[1], sys.argv[2]
if os.path.basename(wheel) != "arkflow_plugin-0.2.0-py3-none-any.whl":
    sys.exit(f"python sdk wheel: expected arkflow_plugin-0.2.0-py3-none-any.whl, got {os.path.basename(wheel)}")
names = set(zipfile.ZipFile(wheel).namelist())
want = {f"arkflow/{f}" for f in os.listdir(os.path.join(sdk, "arkflow")) if f.endswith(".py")}
meta = zipfile.ZipFile(wheel).read("arkflow_plugin-0.2.0.dist-info/METADATA").decode()
missing = sorted(want - names)
extra = sorted(n for n in names - want if not n.startswith("arkflow_plugin-0.2.0.dist-info/"))
ok = "arkflow/__init__.py" in want and not missing and not extra and "\nName: arkflow-plugin\n" in meta
print(f"python sdk wheel: {os.path.basename(wheel)}, {len(want)} modules" + ("" if ok else f"; missing {missing}, unexpected {extra}"))
sys.exit(0 if ok else 1)
PY
