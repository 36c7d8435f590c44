#!/usr/bin/env bash
# build-deb.sh - builds the Debian package from a finished build tree;
# run by `make deb` as `packaging/build-deb.sh BUILD VERSION`.
#
# Stages everything under BUILD/deb/root (rebuilt each time), lets
# dpkg-shlibdeps find the runtime libraries the programs link, writes
# DEBIAN/control from debian/control.in, and packs BUILD/nvr_VERSION_ARCH.deb
# with dpkg-deb (files owned by root). Layout:
#   /usr/bin/           nvrd and the tools
#   /etc/nvr/nvr.conf   the default configuration (a conffile)
#   /lib/systemd/system/nvrd.service
#   /usr/share/nvr/fixtures/  the simulator's videos (demo.simulate)
#   /usr/share/nvr/web/ the UI's static files, when web/static exists
#   /usr/share/doc/nvr/ README.md, CONFIG.md and docs/
set -euo pipefail

build=${1:?usage: build-deb.sh BUILD VERSION}
version=${2:?usage: build-deb.sh BUILD VERSION}
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
cd "$top"
arch=$(dpkg --print-architecture)
stage=$build/deb
root=$stage/root
programs=(nvrd nvrctl nvr-format nvr-fsck nvr-bench nvr-camsim)

rm -rf "$stage"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/etc/nvr" "$root/lib/systemd/system" \
	"$root/usr/share/nvr/fixtures" "$root/usr/share/doc/nvr"
for p in "${programs[@]}"; do
	install -m 0755 "$build/bin/$p" "$root/usr/bin/$p"
done
install -m 0644 packaging/nvr.conf "$root/etc/nvr/nvr.conf"
install -m 0644 packaging/nvrd.service "$root/lib/systemd/system/nvrd.service"
install -m 0644 "$build"/fixtures/h264-10-1000-25-640x360.264 \
	"$build"/fixtures/h265-10-1000-25-640x360.265 "$root/usr/share/nvr/fixtures/"
if [[ -d web/static ]]; then
	install -d "$root/usr/share/nvr/web"
	cp -r web/static/. "$root/usr/share/nvr/web/"
fi
install -m 0644 README.md "$root/usr/share/doc/nvr/README.md"
install -d "$root/usr/share/doc/nvr/docs"
install -m 0644 docs/*.md "$root/usr/share/doc/nvr/docs/"
install -m 0644 docs/CONFIG.md "$root/usr/share/doc/nvr/CONFIG.md"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm \
	"$root/DEBIAN/"

# dpkg-shlibdeps reads debian/control of the directory it runs in.
install -d "$stage/src/debian"
printf 'Source: nvr\n\nPackage: nvr\nArchitecture: any\n' >"$stage/src/debian/control"
bins=()
for p in "${programs[@]}"; do bins+=("$(cd "$root/usr/bin" && pwd)/$p"); done
depends=$(cd "$stage/src" && dpkg-shlibdeps -O "${bins[@]}" 2>"$stage/shlibdeps.log" |
	sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || { cat "$stage/shlibdeps.log" >&2; echo "build-deb: no dependencies found" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
	-e "s/@DEPENDS@/$depends/" packaging/debian/control.in >"$root/DEBIAN/control"
deb=$build/nvr_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
