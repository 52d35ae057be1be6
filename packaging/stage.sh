#!/usr/bin/env bash
# Stage the installed layout of mini-container into DEST (shared by the .deb and the .rpm):
#   /usr/lib/mini-container/mcctl/   one-dir mcctl     /usr/bin/mcctl -> ../lib/mini-container/mcctl/mcctl
#   /usr/lib/mini-container/mcd/     one-dir mcd       /usr/bin/mcd   -> ../lib/mini-container/mcd/mcd
#   /usr/lib/mini-container/mcrt/    one-dir mcrt      /usr/bin/mcrt  -> ../lib/mini-container/mcrt/mcrt
#   /usr/lib/systemd/system/mcd.service, /usr/lib/tmpfiles.d/mcd.conf, /usr/lib/sysusers.d/mcd.conf
#   /etc/mcd/mcd.toml, man pages (gzip -9n), bash and zsh completions
# Usage: packaging/stage.sh DEST
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="$1"
cd "$repo"
for f in dist/mcctl-dir/mcctl dist/mcd/mcd dist/mcrt/mcrt man/mcctl.1 man/mcd.8 man/mcrt.8 \
         completions/mcctl.bash completions/_mcctl completions/mcrt.bash completions/_mcrt; do
    [ -e "$f" ] || { echo "stage: $f missing (make dist; make man; make completions)" >&2; exit 1; }
done
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"

rm -rf "$dest"
lib="$dest/usr/lib/mini-container"
install -d "$lib" "$dest/usr/bin"
cp -a dist/mcd "$lib/mcd"
# mcd-selfcheck stays in the staged tree so the package builds can re-run it after changing
# the bundle; they delete it before archiving (not part of the product).
ln -s ../lib/mini-container/mcd/mcd "$dest/usr/bin/mcd"
cp -a dist/mcctl-dir "$lib/mcctl"
ln -s ../lib/mini-container/mcctl/mcctl "$dest/usr/bin/mcctl"
cp -a dist/mcrt "$lib/mcrt"
ln -s ../lib/mini-container/mcrt/mcrt "$dest/usr/bin/mcrt"

install -D -m 0644 packaging/systemd/mcd.service "$dest/usr/lib/systemd/system/mcd.service"
install -D -m 0644 packaging/systemd/mcd.tmpfiles "$dest/usr/lib/tmpfiles.d/mcd.conf"
install -D -m 0644 packaging/systemd/mcd.sysusers "$dest/usr/lib/sysusers.d/mcd.conf"
install -D -m 0644 packaging/mcd.toml "$dest/etc/mcd/mcd.toml"
install -d "$dest/etc/mcd/net.d"     # CNI configuration lists an administrator adds

install -d "$dest/usr/share/man/man1" "$dest/usr/share/man/man8"
gzip -9n < man/mcctl.1 > "$dest/usr/share/man/man1/mcctl.1.gz"
gzip -9n < man/mcd.8 > "$dest/usr/share/man/man8/mcd.8.gz"
gzip -9n < man/mcrt.8 > "$dest/usr/share/man/man8/mcrt.8.gz"
install -D -m 0644 completions/mcctl.bash "$dest/usr/share/bash-completion/completions/mcctl"
install -D -m 0644 completions/_mcctl "$dest/usr/share/zsh/vendor-completions/_mcctl"
install -D -m 0644 completions/mcrt.bash "$dest/usr/share/bash-completion/completions/mcrt"
install -D -m 0644 completions/_mcrt "$dest/usr/share/zsh/vendor-completions/_mcrt"

# Normalise what PyInstaller and cp leave behind: modes, then times (reproducible archives).
find "$dest" -type d -exec chmod 0755 {} +
find "$dest" -type f -exec chmod go-w,u+w,a+r {} +
# Shared objects are mapped, not executed: no exec bit (PyInstaller copies them 0755).
# Wheels from PyPI (psutil) ship unstripped; a .so has no appended archive, so strip is
# safe there (never on the bootloader executables, whose bundle is appended to the ELF).
find "$lib" -type f -name '*.so*' -exec chmod 0644 {} + -exec strip --strip-unneeded {} +
find "$dest" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
