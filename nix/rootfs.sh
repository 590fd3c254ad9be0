# Assembles an environment's root filesystem from pinned .debs and wheels.
# Run by the busybox seed inside Nix's sandbox; attributes arrive as variables.
export PATH="$applets"
set -f

mkdir -p "$out"
# Packages are unpacked (their control files kept for dpkg's database), then
# configured by their own maintainer scripts (configure.sh) when dpkg is among them.
control="$NIX_BUILD_TOP/control"
# Merged /usr, as debootstrap lays it out for bookworm and later (usr-is-merged checks it).
for dir in bin sbin lib lib64; do
  mkdir -p "$out/usr/$dir"
  ln -s "usr/$dir" "$out/$dir"
done
i=0
for deb in $debs; do
  i=$((i + 1))
  mkdir -p "$control/$i"
  dpkg-deb -e "$deb" "$control/$i"
  # Through tar, which keeps the packages' file times as dpkg does (busybox's dpkg-deb
  # stamps the clock; byte-compiled Python records its source's time).
  member="$(ar -t "$deb" | grep '^data\.tar')"
  case "$member" in
  data.tar.xz) unpack=-J ;;
  data.tar.gz) unpack=-z ;;
  data.tar.bz2) unpack=-j ;;
  data.tar) unpack= ;;
  *) echo "reproflake: $deb: cannot unpack '$member' (expected data.tar with xz, gzip, bzip2 or no compression)" >&2; exit 1 ;;
  esac
  ar -p "$deb" "$member" | tar -x -v $unpack -f - -C "$out" >"$control/$i/.files"
done
# Maintainer scripts assume Debian's Essential set (sed, grep, ...): a root without it
# (essential = false) is only unpacked, even when dpkg came in as a dependency.
if [ -x "$out/usr/bin/dpkg" ] && [ -x "$out/usr/bin/sed" ]; then
  sh -e "$configureScript" register
  unshare -r -m "$busybox" sh -e "$configureScript" chroot
  sh -e "$configureScript" normalise
elif [ -x "$out/sbin/ldconfig" ]; then
  # Without dpkg nothing is configured; the dynamic linker's cache is still useful.
  # Debian's ldconfig is static: it runs here and writes the cache for the new root.
  "$out/sbin/ldconfig" -r "$out" -X
  # Its auxiliary cache records inodes and times: not reproducible, and only a speed-up.
  rm -f "$out/var/cache/ldconfig/aux-cache"
fi

mkdir -p "$out/etc" "$out/tmp" "$out/root"
[ -e "$out/etc/passwd" ] || printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
  'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' >"$out/etc/passwd"
[ -e "$out/etc/group" ] || printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$out/etc/group"
[ -e "$out/etc/hosts" ] || printf '%s\n' '127.0.0.1 localhost' >"$out/etc/hosts"

[ -n "$wheels" ] || exit 0

# Wheels are installed the way an installer lays them out (PEP 427), without
# compiling bytecode: the store is read-only and .pyc files would differ.
site="$out/usr/local/lib/python$pythonVersion/dist-packages"
bin="$out/usr/local/bin"
mkdir -p "$site" "$bin"
for wheel in $wheels; do
  unzip -q -o "$wheel" -d "$site"
done
set +f
for data in "$site"/*.data; do
  [ -d "$data" ] || continue
  for kind in purelib platlib; do
    [ -d "$data/$kind" ] && cp -a "$data/$kind/." "$site/"
  done
  [ -d "$data/scripts" ] && cp -a "$data/scripts/." "$bin/"
  [ -d "$data/data" ] && cp -a "$data/data/." "$out/usr/local/"
  if [ -d "$data/headers" ]; then
    mkdir -p "$out/usr/local/include/python$pythonVersion"
    cp -a "$data/headers/." "$out/usr/local/include/python$pythonVersion/"
  fi
  rm -rf "$data"
done
# Scripts shipped in .data/scripts start with "#!python".
for script in "$bin"/*; do
  [ -f "$script" ] || continue
  if head -c 8 "$script" | grep -q '^#!python'; then
    sed -i '1s|^#!python.*|#!/usr/bin/python3|' "$script"
  fi
  chmod 755 "$script"
done
# Console scripts from entry points.
for eps in "$site"/*.dist-info/entry_points.txt; do
  [ -f "$eps" ] || continue
  awk -v bin="$bin" '
    /^\[/ { section = $0; next }
    section == "[console_scripts]" && /=/ {
      name = $0; sub(/[ \t]*=.*/, "", name)
      target = $0; sub(/^[^=]*=[ \t]*/, "", target); sub(/[ \t]*[[].*/, "", target)
      module = target; sub(/:.*/, "", module)
      fn = target; sub(/^[^:]*:?/, "", fn)
      if (fn == "") fn = "main"
      file = bin "/" name
      printf "#!/usr/bin/python3\nimport sys\nfrom %s import %s as _entry\nsys.exit(_entry())\n", module, fn > file
      close(file)
    }' "$eps"
done
# (awk's system() would need a /bin/sh, which the sandbox does not have.)
for script in "$bin"/*; do
  if [ -f "$script" ]; then chmod 755 "$script"; fi
done
