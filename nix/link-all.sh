# Links every step's output under one directory (the flake's default package).
export PATH="$applets"
mkdir -p "$out"
tab="$(printf '\t')"
printf '%s' "$links" | while IFS="$tab" read -r name target; do
  ln -s "$target" "$out/$name"
done
