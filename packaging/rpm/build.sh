#!/usr/bin/env bash
# make rpm: dist/mini-container-<version>-1.<arch>.rpm from the staged tree (same layout as
# the .deb), then verified the way an admin would look at it: rpm -qip, rpm -qlp, and
# unpacked with rpm2cpio | cpio.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
version="$(/usr/bin/python3 -c 'import mcwire; print(mcwire.__version__)')"   # the one source
top="$repo/build/rpm"
rm -rf "$top"
mkdir -p "$top"/{BUILD,RPMS,SPECS,SRPMS,SOURCES}
stage="$top/stage/root"
bash packaging/stage.sh "$stage"
# Unlike the .deb, the RPM keeps the bundled libraries (sonames differ across RPM distros).
"$stage/usr/lib/mini-container/mcd/mcd-selfcheck" >/dev/null
rm -f "$stage/usr/lib/mini-container/mcd/mcd-selfcheck"
cp packaging/deb/copyright "$top/stage/copyright"

rpmbuild -bb --quiet \
    --define "_topdir $top" \
    --define "stage_dir $stage" \
    --define "pkg_version $version" \
    packaging/rpm/mini-container.spec
rpm_file="$(ls "$top"/RPMS/*/mini-container-"$version"-1.*.rpm)"
mkdir -p dist
cp "$rpm_file" dist/
out="dist/$(basename "$rpm_file")"
echo "rpm: built $out ($(du -h "$out" | cut -f1)) in $SECONDS s"

# Verify: metadata, file list, and the payload really unpacks into the staged layout.
rpm -qip "$out" >/dev/null
rpm -qlp "$out" | grep -x /etc/mcd/mcd.toml >/dev/null || { echo "rpm: /etc/mcd/mcd.toml missing" >&2; exit 1; }
rpm -qp --configfiles "$out" | grep -x /etc/mcd/mcd.toml >/dev/null || { echo "rpm: mcd.toml is not %config" >&2; exit 1; }
check="$top/unpacked"
mkdir -p "$check"
(cd "$check" && rpm2cpio "$repo/$out" | cpio -idm --quiet)
for f in usr/bin/mcctl usr/bin/mcd usr/bin/mcrt usr/lib/systemd/system/mcd.service usr/share/man/man1/mcctl.1.gz \
         usr/share/man/man8/mcd.8.gz usr/share/man/man8/mcrt.8.gz usr/share/bash-completion/completions/mcctl \
         usr/share/bash-completion/completions/mcrt usr/share/zsh/site-functions/_mcctl usr/share/zsh/site-functions/_mcrt; do
    [ -e "$check/$f" ] || { echo "rpm: $f missing from the payload" >&2; exit 1; }
done
"$check/usr/bin/mcctl" --version >/dev/null
"$check/usr/bin/mcd" --version >/dev/null
"$check/usr/bin/mcrt" --version >/dev/null
# Install into a scratch rpmdb root (no deps, no scriptlets: an empty root has neither),
# verify every file's digest, mode and owner (rpm -V), erase, and require an empty tree.
sroot="$top/rpmroot"
rpm --root "$sroot" --initdb
rpm --root "$sroot" -i --nodeps --noscripts "$repo/$out" 2>/dev/null
rpm --root "$sroot" -V --nodeps mini-container
"$sroot/usr/bin/mcctl" --version >/dev/null
rpm --root "$sroot" -e --noscripts mini-container 2>/dev/null
left="$(cd "$sroot" && find . -mindepth 1 ! -path './var/*' ! -path './usr/lib/sysimage/*' ! -path './root/.rpmdb/*' ! -type d)"
[ -z "$left" ] || { echo "rpm: files left after erase: $left" >&2; exit 1; }
echo "rpm: verified (rpm -qip, rpm -qlp, rpm2cpio | cpio; rpm -i, rpm -V and rpm -e in a scratch root)"
