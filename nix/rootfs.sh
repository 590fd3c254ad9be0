# Assembles an environment's root filesystem from pinned .debs and wheels.
# Run by the busybox seed inside Nix's sandbox; attributes arrive as variables.
export PATH="$applets"
set -f

mkdir -p "$out"
# Packages are unpacked, not configured: maintainer scripts do not run. What they
# would do that software most often needs is redone below: the alternatives their
# postinst registers, and the dynamic linker's cache.
alternatives="$NIX_BUILD_TOP/alternatives"
: >"$alternatives"
for deb in $debs; do
  dpkg-deb -x "$deb" "$out"
  rm -rf "$NIX_BUILD_TOP/control"
  dpkg-deb -e "$deb" "$NIX_BUILD_TOP/control"
  if [ -f "$NIX_BUILD_TOP/control/postinst" ]; then
    # "update-alternatives --install LINK NAME PATH PRIORITY [--slave LINK NAME PATH]...",
    # possibly continued over lines; entries that use shell variables are skipped.
    awk '
      { line = line $0 }
      /\\$/ { sub(/\\$/, " ", line); next }
      { if (line ~ /update-alternatives[ \t]+--install/ && line !~ /\$/) {
          n = split(line, w, /[ \t]+/)
          for (i = 1; i <= n; i++) if (w[i] == "--install") break
          if (i + 4 <= n) {
            print w[i+4], w[i+2], w[i+1], w[i+3]
            for (j = i + 5; j + 3 <= n; j++) if (w[j] == "--slave") print w[i+4], w[j+2], w[j+1], w[j+3]
          }
        }
        line = "" }' "$NIX_BUILD_TOP/control/postinst" >>"$alternatives"
  fi
done
# For each alternative name the highest priority wins, as in `update-alternatives --auto`.
sort -k2,2 -k1,1nr "$alternatives" | awk '!seen[$2]++ { print $3, $4 }' | while read -r link target; do
  if [ -e "$out$target" ] && [ ! -e "$out$link" ]; then
    mkdir -p "$out$(dirname "$link")"
    ln -s "$target" "$out$link"
  fi
done
if [ -x "$out/sbin/ldconfig" ]; then
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
