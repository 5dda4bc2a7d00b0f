#!/usr/bin/env bash
# build.sh OUTDIR: builds lyncxdp_VERSION_amd64.deb into OUTDIR with the standard Debian tools.
# Called by `make deb` (OUTDIR = the repository top). Steps:
#  1. compile with Debian's hardening flags (dpkg-buildflags) into build/deb/obj, separate from
#     the development build;
#  2. stage the files with the project's own `make install PREFIX=/usr` into build/deb/root;
#  3. Debian's parts: stripped binary, gzipped man page, copyright and changelog in
#     /usr/share/doc/lyncxdp, maintainer scripts, conffiles, md5sums;
#  4. dpkg-shlibdeps computes Depends from the libraries the binary links, dpkg-gencontrol
#     writes DEBIAN/control from scripts/deb/control and scripts/deb/changelog;
#  5. dpkg-deb --build, with root:root ownership (no fakeroot needed).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(cd "${1:-$top}" && pwd)
here=$top/scripts/deb
work=$top/build/deb
obj=$work/obj
root=$work/root
src=$work/src
cd "$top"

version=$(make -s --no-print-directory print-version)
changelog_version=$(dpkg-parsechangelog -l "$here/changelog" -S Version)
if [ "$version" != "$changelog_version" ]; then
	echo "build.sh: Makefile VERSION $version but scripts/deb/changelog says $changelog_version: add a changelog entry" >&2
	exit 1
fi
arch=$(dpkg-architecture -qDEB_HOST_ARCH)

# 1 and 2: build with Debian's flags, install under /usr.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
rm -rf "$root" "$src"
make -s --no-print-directory BUILD="$obj" DESTDIR="$root" PREFIX=/usr UNITDIR=/lib/systemd/system \
	CFLAGS="$(dpkg-buildflags --get CFLAGS)" CPPFLAGS="$(dpkg-buildflags --get CPPFLAGS)" \
	LDFLAGS="$(dpkg-buildflags --get LDFLAGS)" install

# 3: Debian's parts.
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root/usr/sbin/lyncxdp"
gzip -9n "$root/usr/share/man/man8/lyncxdp.8"
doc=$root/usr/share/doc/lyncxdp
install -m 0644 "$here/copyright" "$doc/copyright"
gzip -9nc "$here/changelog" >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"
install -D -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/lyncxdp"
install -d -m 0755 "$root/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find etc -type f -printf '/%p\n' | sort) >"$root/DEBIAN/conffiles"
[ -s "$root/DEBIAN/conffiles" ] || rm "$root/DEBIAN/conffiles"

# 4: Depends from the linked libraries, then the control file (a throwaway source tree).
install -d "$src/debian"
cp "$here/control" "$here/changelog" "$src/debian/"
(cd "$src" && dpkg-shlibdeps -Tdebian/substvars "$root/usr/sbin/lyncxdp" &&
	dpkg-gencontrol -plyncxdp -P"$root" -Tdebian/substvars -DArchitecture="$arch")
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
	xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"

# 5: the package.
deb=$out/lyncxdp_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
