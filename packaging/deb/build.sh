#!/usr/bin/env bash
# Builds dist/medark_<version>_<arch>.deb with dpkg-deb alone (no debhelper): a
# self-contained virtualenv in /opt/medark on the system's /usr/bin/python3, the
# /usr/bin/medark link the systemd units run, the units, /etc/medark/server.env and the
# maintainer scripts (the medark user, /etc/medark, /var/lib/medark). docs/deployment.md.
#
# Build it on the Debian release it is for (bookworm for bookworm): the virtualenv holds
# compiled wheels for this machine's architecture and Python minor version, so the
# package is architecture-specific and depends on that Python minor version.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: packaging/deb/build.sh [--out DIR] [--wheel FILE] [--extras LIST]
                              [--wheelhouse DIR] [--compression xz|zstd|gzip|none]
  --out DIR          where the .deb goes (default: dist/ of the repository)
  --wheel FILE       install this medark wheel (default: build one from the tree)
  --extras LIST      extras of medark to install, comma-separated (default: report;
                     "" for none: no monthly PDF reports)
  --wheelhouse DIR   install from the wheels in DIR without an index, downloading
                     into DIR only what is missing (offline rebuilds, pinned inputs)
  --compression C    dpkg-deb compression (default: xz)
Environment: PYTHON (default /usr/bin/python3), DEB_MAINTAINER.
USAGE
}

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=$top/dist
wheel=""
extras=report
wheelhouse=""
compression=xz
PYTHON=${PYTHON:-/usr/bin/python3}
maintainer=${DEB_MAINTAINER:-Medark maintainers <medark@localhost>}
prefix=/opt/medark

die() { echo "build.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift 2 ;;
    --wheel) [ $# -ge 2 ] || die "--wheel needs a file"; wheel=$2; shift 2 ;;
    --extras) [ $# -ge 2 ] || die "--extras needs a list"; extras=$2; shift 2 ;;
    --wheelhouse) [ $# -ge 2 ] || die "--wheelhouse needs a directory"; wheelhouse=$2; shift 2 ;;
    --compression) [ $# -ge 2 ] || die "--compression needs a name"; compression=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
case $compression in xz|zstd|gzip|none) ;; *) die "--compression: xz, zstd, gzip or none" ;; esac
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"
[ -x "$PYTHON" ] || die "$PYTHON not found: the package runs on the system's python3"
"$PYTHON" -c 'import sys, venv; assert sys.version_info >= (3, 11)' 2>/dev/null \
  || die "$PYTHON is not Python 3.11+ with the venv module (apt-get install python3-venv)"
[ -z "$wheel" ] || [ -f "$wheel" ] || die "--wheel $wheel: no such file"

pyver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
pynext=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1] + 1}")')
version=$("$PYTHON" -c 'import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$top/pyproject.toml")
# PEP 440 pre-releases sort before the release in Debian only with a tilde: 1.0rc1 -> 1.0~rc1.
debversion=$(printf '%s' "$version" | sed -E 's/^([0-9.]+)\.?(a|b|rc|dev)/\1~\2/')
arch=$(dpkg --print-architecture)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/root
venv=$stage$prefix
mkdir -p "$stage/DEBIAN" "$out"

echo "== virtualenv $prefix on $PYTHON ($pyver)"
# Without pip inside (nothing in the package installs into it; a newer package replaces
# it): pip runs from outside with --python, Debian's python3-pip or a scratch venv's.
"$PYTHON" -m venv --without-pip "$venv"
if "$PYTHON" -m pip --version >/dev/null 2>&1; then
  installer=("$PYTHON" -m pip)
else
  "$PYTHON" -m venv "$work/tools"
  installer=("$work/tools/bin/python" -m pip)
fi
pip=("${installer[@]}" --python "$venv/bin/python" --disable-pip-version-check --quiet)

if [ -z "$wheel" ]; then
  echo "== wheel from $top"
  mkdir -p "$work/src"  # a copy: a build leaves build/ and *.egg-info beside the sources
  cp -r "$top/pyproject.toml" "$top/README.md" "$top/src" "$work/src/"
  find "$work/src" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
  "${pip[@]}" wheel --no-deps -w "$work/wheel" "$work/src"
  wheel=$(ls "$work"/wheel/medark-*.whl)
fi
spec="$wheel${extras:+[$extras]}"

echo "== installing $(basename "$wheel")${extras:+ with [$extras]}"
if [ -n "$wheelhouse" ]; then
  mkdir -p "$wheelhouse"
  if ! "${pip[@]}" install --no-compile --no-index --find-links "$wheelhouse" "$spec" 2>/dev/null; then
    # pip download copies the medark wheel there too, and an earlier build's wheel of the
    # same version under the same name counts as "already downloaded": its dependencies,
    # not this one's, would be fetched. The wheelhouse keeps dependencies only.
    rm -f "$wheelhouse"/medark-*.whl
    "${pip[@]}" download --dest "$wheelhouse" "$spec"
    rm -f "$wheelhouse"/medark-*.whl
    "${pip[@]}" install --no-compile --no-index --find-links "$wheelhouse" "$spec"
  fi
else
  "${pip[@]}" install --no-compile "$spec"
fi
"$venv/bin/python" -c 'import medark.cli.main' || die "the installed medark does not import"

# The virtualenv was made under $stage: its scripts must name $prefix.
for f in "$venv"/bin/* "$venv/pyvenv.cfg"; do
  if [ -f "$f" ] && [ ! -L "$f" ] && grep -qIF "$venv" "$f"; then
    sed -i "s|$venv|$prefix|g" "$f"
  fi
done
find "$venv" -name __pycache__ -type d -prune -exec rm -rf {} +  # postinst compiles

echo "== files"
mkdir -p "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/medark" \
         "$stage/usr/share/doc/medark/examples"
ln -s "$prefix/bin/medark" "$stage/usr/bin/medark"
install -m 0644 "$top"/packaging/systemd/*.service "$stage/lib/systemd/system/"
install -m 0640 "$top/packaging/systemd/server.env" "$stage/etc/medark/server.env"
install -m 0644 "$top/docs/deployment.md" "$top/README.md" "$stage/usr/share/doc/medark/"
install -m 0644 "$top"/docs/examples/* "$stage/usr/share/doc/medark/examples/"
for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$stage/DEBIAN/$s"; done
echo /etc/medark/server.env > "$stage/DEBIAN/conffiles"

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: medark
Version: $debversion
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Section: admin
Priority: optional
Depends: python3 (>= $pyver), python3 (<< $pynext), adduser, ca-certificates
Recommends: postgresql-client, mariadb-client, mariadb-backup, fonts-noto-cjk, fontconfig, libpango-1.0-0, libpangoft2-1.0-0
Suggests: postgresql, mariadb-server, pgbouncer, haproxy
Description: deduplicated, encrypted, verified backups for hospitals
 Medark protects hospital data: deduplicated, encrypted and verified backups of
 files, PostgreSQL and MariaDB, point-in-time restore, restore tests and DR
 switch-over, with a management server for a regional center.
 .
 This package holds Medark $version in a virtualenv in $prefix, on Python $pyver,
 the medark-server, medark-daemon and medark-agent systemd units (not enabled).
CONTROL

deb="$out/medark_${debversion}_${arch}.deb"
echo "== $deb"
dpkg-deb --root-owner-group -Z"$compression" --build "$stage" "$deb" >/dev/null
echo "$deb"
