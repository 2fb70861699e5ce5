#!/bin/sh
# docker-py's own integration tests against a tether daemon in a lab (issue 17).
#
#   scripts/dockerpy-tests.sh [PYTEST ARGS...]      (as root; default: all of tests/integration)
#
# DOCKERPY_SRC (required): a checkout of docker-py at tag 7.1.0 (its tests are not in the PyPI
# sdist; this machine cannot reach the forge, so the checkout is brought here by hand). Only the checkout's tests/ and pytest.ini are
# used: docker-py itself, pytest and the tests' imports go into a throwaway venv. The lab's
# daemon runs this tree's code; the tests run inside the lab host's network namespace.
# The image is the repo's offline busybox under the tags the tests use (alpine:3.10,
# alpine:latest, busybox:latest), with what they expect of alpine's (a postgres user,
# /var/opt). Left out: tests/integration/credentials (they need a docker-credential store,
# and one of them replaces os.environ, which loses DOCKER_HOST for every later test).
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
tether=${TETHER:-$repo/.venv/bin/tether}
python=${PYTHON:-python3}
work=$(mktemp -d /tmp/dockerpy.XXXXXX)
lab=dpy$(date +%s | tail -c 6)

cleanup() {
    PYTHONPATH="$repo/src" "$tether" lab down "$lab" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

src=${DOCKERPY_SRC:?set DOCKERPY_SRC to a docker-py 7.1.0 checkout}
mkdir -p "$work/run" "$work/config"
cp -a "$src/tests" "$src/pytest.ini" "$work/run/"
echo '{}' >"$work/config/config.json"

"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q docker==7.1.0 pytest pytest-timeout paramiko websocket-client

sh "$repo/scripts/build-busybox-image.sh" "$work/busybox.tar"
"$work/venv/bin/python" - "$work/busybox.tar" "$work/alpine.tar" <<'PY'
import io, sys, tarfile
extra = {"etc/passwd": b"postgres:x:70:70::/var/lib/postgresql:/bin/sh\n",
         "etc/group": b"postgres:x:70:\n"}
with tarfile.open(sys.argv[1]) as tin, tarfile.open(sys.argv[2], "w") as tout:
    for m in tin.getmembers():
        data = tin.extractfile(m).read() if m.isfile() else None
        if data is not None:
            data += extra.get(m.name.lstrip("./"), b"")
            m.size = len(data)
        tout.addfile(m, io.BytesIO(data) if data is not None else None)
    for d in ("var/opt", "var/lib/postgresql"):
        info = tarfile.TarInfo(d)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tout.addfile(info)
PY

export PYTHONPATH="$repo/src"
"$tether" lab up "$lab" --host h1 >/dev/null
in_lab() { "$tether" lab exec "$lab" h1 -- env -u PYTHONPATH DOCKER_CONFIG="$work/config" "$@"; }
in_lab "$work/venv/bin/python" - "$work/alpine.tar" <<'PY'
import sys, docker
c = docker.from_env()

c.api.import_image(src=sys.argv[1], repository="alpine", tag="3.10", changes=['CMD ["/bin/sh"]'])
for repo, tag in (("alpine", "latest"), ("busybox", "latest")):
    c.api.tag("alpine:3.10", repo, tag)
PY
cd "$work/run"
if [ $# -eq 0 ]; then
    set -- tests/integration --ignore=tests/integration/credentials
fi
in_lab "$work/venv/bin/python" -m pytest -q -rfEs -p no:cacheprovider --timeout=120 "$@"
