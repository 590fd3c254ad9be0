# Assembles an environment's root filesystem from pinned .debs and wheels.
# Run by the busybox seed inside Nix's sandbox; attributes arrive as variables.
export PATH="$NIX_BUILD_TOP/.bin"
"$busybox" mkdir -p "$PATH"
"$busybox" --install -s "$PATH"
set -f

mkdir -p "$out"
# Packages are unpacked, not configured: maintainer scripts do not run.
for deb in $debs; do
  dpkg-deb -x "$deb" "$out"
done

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
