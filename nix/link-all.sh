# Links every step's output under one directory (the flake's default package).
export PATH="$NIX_BUILD_TOP/.bin"
"$busybox" mkdir -p "$PATH"
"$busybox" --install -s "$PATH"
mkdir -p "$out"
tab="$(printf '\t')"
printf '%s' "$links" | while IFS="$tab" read -r name target; do
  ln -s "$target" "$out/$name"
done
