#!/bin/sh
# Build a minimal busybox root filesystem tarball, offline, from the host's
# static busybox (Debian busybox-static).
#
#   scripts/build-busybox-image.sh OUT.tar
#   docker import -c 'CMD ["/bin/sh"]' OUT.tar alpine:latest
#
# Layout: /bin/busybox plus one symlink per applet in /bin (like Docker's busybox
# image, so every applet is found whatever PATH is), /etc/passwd, /etc/group,
# empty /etc/hosts /etc/resolv.conf /etc/hostname (bind-mount targets), /tmp
# (1777), /root, /proc /sys /dev, /usr/bin /usr/sbin /sbin /var /run /home.
set -eu

out=${1:?usage: $0 OUT.tar}
busybox=${BUSYBOX:-/usr/bin/busybox}

if ! "$busybox" --list >/dev/null 2>&1; then
    echo "$0: $busybox is not a working busybox (install busybox-static)" >&2
    exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
    echo "$0: $busybox is dynamically linked; a static busybox is needed" >&2
    exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT INT TERM

mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/etc" \
    "$root/root" "$root/proc" "$root/sys" "$root/dev" "$root/var/log" "$root/run" \
    "$root/home" "$root/tmp" "$root/var/tmp" "$root/var/www"
chmod 0755 "$root"
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"

cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for applet in $("$busybox" --list); do
    case "$applet" in
        busybox|*/*|'') continue ;;
    esac
    ln -sf busybox "$root/bin/$applet"
done

for applet in nslookup ping httpd nc wget ip sleep sh; do
    if [ ! -L "$root/bin/$applet" ]; then
        echo "$0: busybox lacks the applet $applet" >&2
        exit 1
    fi
done

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
tty:x:5:
www-data:x:33:
nogroup:x:65534:
GROUP
: >"$root/etc/hosts"
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
chmod 0644 "$root"/etc/*

tar --numeric-owner --owner=0 --group=0 --sort=name -C "$root" -cf "$out" .
