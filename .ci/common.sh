# Shared by .ci/demo and .ci/test: one virtual environment with exactly the locked versions.
# .ci/requirements.lock pins every package (transitive ones included) that pyproject.toml's [dev] extra
# resolves to; `bash .ci/lock` refreshes it on purpose. torch is the CPU build (==2.13.0+cpu).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
quiet() { grep -v "is ignored: it is neither a file nor a directory" || true; }
# Skip the resolver when the venv already holds this lock (a stamp of the lock and pyproject.toml).
stamp=$(cat .ci/requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat .venv/.edgeseal-lock 2>/dev/null)" != "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r .ci/requirements.lock 2>&1 | quiet
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | quiet
  .venv/bin/python -m pip check >/dev/null || { .venv/bin/python -m pip check; exit 1; }
  echo "$stamp" > .venv/.edgeseal-lock
fi
