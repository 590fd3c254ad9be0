# Runs one reproflake step inside Nix's build sandbox.
#
# The step runs unmodified Debian binaries at their usual paths: a nested user
# namespace lets us chroot into the environment's root filesystem, with the
# store, /dev, /proc, the step's inputs and its output bind-mounted. Attributes
# arrive as variables; the user's command is passed as one argument to /bin/sh,
# never pasted into this script.
root="$NIX_BUILD_TOP/root"
work="$root/work"

if [ "$1" != inner ]; then
  export PATH="$NIX_BUILD_TOP/.bin"
  "$busybox" mkdir -p "$PATH"
  "$busybox" --install -s "$PATH"
  mkdir -p "$root"
  for entry in "$rootfs"/* "$rootfs"/.[!.]*; do
    [ -e "$entry" ] || [ -L "$entry" ] || continue
    name="${entry##*/}"
    if [ -L "$entry" ]; then
      cp -P "$entry" "$root/$name"
    elif [ -d "$entry" ]; then
      mkdir -p "$root/$name"
    fi
  done
  set -f
  mkdir -p "$root/dev" "$root/proc" "$root/tmp" "$root/nix/store" "$work" "$NIX_BUILD_TOP/scratch"
  tab="$(printf '\t')"
  # Sources are copied (scripts see ordinary, writable files), data is linked.
  printf '%s' "$sourceCopies" | while IFS="$tab" read -r rel target; do
    mkdir -p "$work/$(dirname "$rel")"
    cp "$target" "$work/$rel"
    chmod u+w "$work/$rel"
  done
  printf '%s' "$inputLinks$needLinks" | while IFS="$tab" read -r rel target; do
    mkdir -p "$work/$(dirname "$rel")"
    rm -rf "$work/$rel"
    ln -s "$target" "$work/$rel"
  done
  mkdir -p "$out" "$work/results/$stepName"
  exec unshare -r -m "$busybox" sh -e "$0" inner
fi

for entry in "$rootfs"/*; do
  name="${entry##*/}"
  if [ -d "$entry" ] && [ ! -L "$entry" ] && [ "$name" != tmp ]; then
    mount --rbind "$entry" "$root/$name"
  fi
done
mount --rbind /dev "$root/dev"
mount --rbind /proc "$root/proc"
mount --rbind /nix/store "$root/nix/store"
mount --rbind "$NIX_BUILD_TOP/scratch" "$root/tmp"
set -f
mount --bind "$out" "$work/results/$stepName"
mkdir -p "$root/tmp/home/.config/matplotlib"
# Plotting defaults that keep figures bit-for-bit: matplotlib otherwise draws random
# SVG ids. A matplotlibrc in the step's working directory still takes precedence.
printf '%s\n' 'backend: Agg' 'svg.hashsalt: reproflake' >"$root/tmp/home/.config/matplotlib/matplotlibrc"

# The step's own variables (names are checked by reproflake: [A-Za-z_][A-Za-z0-9_]*).
set --
for name in $varNames; do
  eval "value=\${var_$name}"
  set -- "$@" "$name=$value"
done

status=0
chroot "$root" /usr/bin/env -i -C /work \
  PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin \
  HOME=/tmp/home TMPDIR=/tmp TZ=UTC LANG=C.UTF-8 LC_ALL=C.UTF-8 \
  SOURCE_DATE_EPOCH="$sourceDateEpoch" FORCE_SOURCE_DATE=1 \
  PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0 \
  OPENBLAS_CORETYPE="$openblasCoretype" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
  MKL_NUM_THREADS=1 OUT="/work/results/$stepName" REPROFLAKE_STEP="$stepName" \
  "$@" /bin/sh -ec "$stepRun" || status=$?
if [ "$status" -ne 0 ]; then
  echo "reproflake: step '$stepName' failed: its command exited with status $status" >&2
  exit "$status"
fi

# PDF writers that take their dates from the clock (R's pdf(), for one) get
# SOURCE_DATE_EPOCH instead, as Debian's strip-nondeterminism does: the same number of
# digits, so the PDF's cross-reference offsets still hold.
stamp="$(date -u -d "@$sourceDateEpoch" +%Y%m%d%H%M%S)"
find "$out" -type f -name '*.pdf' -exec \
  sed -i -E "s#(/(Creation|Mod)Date ?\(D:)[0-9]{14}#\1$stamp#g" {} +

missing=0
IFS='
'
for output in $outputsList; do
  if [ ! -e "$out/$output" ] && [ ! -L "$out/$output" ]; then
    echo "reproflake: step '$stepName' did not write its declared output results/$stepName/$output" >&2
    missing=1
  fi
done
# The last line of a successful step's log; reproflake shows progress from it.
[ "$missing" -ne 0 ] || echo "reproflake: step '$stepName' finished" >&2
exit "$missing"
