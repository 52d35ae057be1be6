#!/usr/bin/env bash
# make deb: dist/mini-container_<version>_<arch>.deb from a staged tree, with
# dpkg-deb --root-owner-group (no debhelper, no fakeroot needed), then lintian.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
here=packaging/deb
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
version="$(/usr/bin/python3 -c 'import mcwire; print(mcwire.__version__)')"   # the one source
arch="$(dpkg --print-architecture)"
root="build/deb/root"

# Both packages install the frozen one-dir mcctl (the product's shape; docs/packaging.md).
bash packaging/stage.sh "$root"

# Debian ships these libraries and their security updates: use the system's copies instead
# of the ones PyInstaller bundled, and depend on their packages. libpython3.11 stays in the
# bundle: the bootloader loads it by path, matched to the bundled standard library.
declare -A system_libs=(
    [libz.so.1]=zlib1g [libbz2.so.1.0]=libbz2-1.0 [libexpat.so.1]=libexpat1
    [liblzma.so.5]=liblzma5 [libcrypto.so.3]=libssl3 [libssl.so.3]=libssl3
    [libffi.so.8]=libffi8 [libseccomp.so.2]=libseccomp2
)
lib_depends=()
for so in "${!system_libs[@]}"; do
    found="$(find "$root/usr/lib/mini-container" -name "$so" -path '*/_internal/*')"
    [ -n "$found" ] || continue
    rm -f $found
    lib_depends+=("${system_libs[$so]}")
done
# Prove the bundles still run against the system's libraries (and seccomp still loads).
"$root/usr/lib/mini-container/mcd/mcd-selfcheck" \
    $(cd "$repo" && find mcd -type f ! -name '*.py' ! -name '*.pyc' ! -path '*/__pycache__/*' -printf '%P\n')
"$root/usr/lib/mini-container/mcd/mcd" --version >/dev/null
rm -f "$root/usr/lib/mini-container/mcd/mcd-selfcheck"
extra_depends="$(printf '%s\n' "${lib_depends[@]}" libseccomp2 | sort -u | paste -sd, | sed 's/,/, /g')"

doc="$root/usr/share/doc/mini-container"
install -D -m 0644 "$here/copyright" "$doc/copyright"
# A native package: its changelog is changelog.gz (lintian wants one).
date_rfc="$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
printf 'mini-container (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- mini-container developers <mini-container@lists.mini-container.dev>  %s\n' \
    "$version" "$version" "$date_rfc" | gzip -9n > "$doc/changelog.gz"
install -D -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/mini-container"

# The frozen binaries link only against glibc outside the bundle: depend on the newest
# GLIBC_x.y symbol version any of them needs.
libc_min="$(find "$root/usr/lib/mini-container" -type f \( -name '*.so*' -o -perm -u+x \) -print0 \
    | xargs -0 objdump -T 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1)"
[ -n "$libc_min" ] || { echo "deb: could not find the glibc version the binaries need" >&2; exit 1; }

install -d -m 0755 "$root/DEBIAN"
installed_size="$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
    -e "s/@LIBC@/libc6 (>= $libc_min), $extra_depends/" "$here/control.in" > "$root/DEBIAN/control"
echo /etc/mcd/mcd.toml > "$root/DEBIAN/conffiles"
install -m 0755 "$here/scripts/postinst" "$here/scripts/prerm" "$here/scripts/postrm" "$root/DEBIAN/"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
find "$root/DEBIAN" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p dist
deb="dist/mini-container_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "deb: built $deb ($(du -h "$deb" | cut -f1)) in $SECONDS s"

if command -v lintian >/dev/null; then
    # Errors and warnings fail the build; each override is explained in docs/packaging.md.
    t0=$SECONDS
    lintian --fail-on error,warning --tag-display-limit 0 "$deb" || { echo "deb: lintian errors or warnings" >&2; exit 1; }
    echo "deb: lintian clean (errors and warnings; overrides in docs/packaging.md) in $((SECONDS - t0)) s"
fi
