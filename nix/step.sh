# Runs one reproflake step inside Nix's build sandbox.
#
# The step runs unmodified Debian binaries at their usual paths: a nested user
# namespace lets us chroot into the environment's root filesystem, with the
# store, /dev, /proc, the step's inputs and its output bind-mounted. Attributes
# arrive as variables; the user's command is passed as one argument to /bin/sh,
# never pasted into this script.
#
# Only the step's working directory (/work) and /tmp are on disk, in the build
# directory. The root's skeleton (mount points, top-level links) is made on a
# small in-memory file system: making and removing those directories on disk in
# every step cost more than the step itself.
root="$NIX_BUILD_TOP/root"
work="$NIX_BUILD_TOP/work"
scratch="$NIX_BUILD_TOP/scratch"
fstab="$NIX_BUILD_TOP/fstab"

# `reproflake shell` (docs/commands.md) enters a step's environment with this same
# script, outside Nix's sandbox. `describe` (a derivation of its own, nothing of the step
# runs) records the attributes below as Nix resolved them, one file each; `shell` is then
# run with them as variables: /work and the root are laid out as for the step, in a new
# network namespace as well, and the user's command ($shellCommand, or an interactive
# shell) runs where the step's would.
if [ "$1" = describe ]; then
  export PATH="$applets"
  # shellcheck disable=SC2034 # recorded by name in the loop below
  script="$0"
  mkdir -p "$out"
  for name in script busybox applets stepName stepRun rootfs sourceCopies inputLinks \
      needLinks outputsList varNames sourceDateEpoch openblasCoretype; do
    eval "printf '%s' \"\$$name\"" >"$out/$name"
  done
  for name in $varNames; do eval "printf '%s' \"\$var_$name\"" >"$out/var_$name"; done
  exit 0
fi

# ---- begin: the variations of `reproflake verify` --------------------------------
# The verify rebuild of a step (attribute reproflakeVary, a space-separated list) changes
# what a step must not depend on, as reprotest does, inside the sandbox; the first build
# keeps the defaults. Each variation is honoured only where it can change something; the
# Python side reports the ones that cannot (no libfaketime in the environment).
#   time      the clock 400 days (more than a year, another weekday) ahead: libfaketime
#   cpus      OMP_NUM_THREADS=3 (nproc says 3), the affinity narrowed to one CPU
#   hostname  another host and domain name, in a UTS namespace of our own
#   umask     0002 instead of Nix's 0022
#   aslr      address space randomisation on (Nix builds without it)
varyUts="" varyPrefix="" varyInRoot="" varyEnv="" varyHost="" varyUmask="" varyCpus=""
for vary in ${reproflakeVary:-}; do
  case "$vary" in
  hostname) varyUts=-u varyHost=1 ;;
  umask) varyUmask=0002 ;;
  cpus)
    # nproc (coreutils) answers OMP_NUM_THREADS, pinned to 1 for steady numerics (BLAS keeps
    # its own pins): another count, and the affinity narrowed to one CPU where there are more.
    varyCpus="OMP_NUM_THREADS=3"
    mask="$("$busybox" taskset -p $$)"; mask="${mask##*: }"
    lowest="$(printf '%x' $(( 0x$mask & -0x$mask )))"
    [ "$lowest" = "$mask" ] || varyPrefix="taskset $lowest" ;;
  # Nix turns randomisation off for every build (ADDR_NO_RANDOMIZE): the varied build gets
  # it back, as setarch sets the whole personality.
  aslr) [ ! -x "$rootfs/usr/bin/setarch" ] || varyInRoot="/usr/bin/setarch $("$busybox" uname -m)" ;;
  time)
    for lib in "$rootfs"/usr/lib/*/faketime/libfaketime.so.1; do
      [ -e "$lib" ] || continue
      # Not for perl: libfaketime cannot shift the file times the kernel reports (statx),
      # and build drivers written in Perl (latexmk) compare those with the clock; the
      # programs they run (pdflatex, bibtex, ...) still see the shifted clock.
      varyEnv="LD_PRELOAD=${lib#"$rootfs"} FAKETIME=+400d DONT_FAKE_MONOTONIC=1 FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_SKIP_CMDS=perl"
    done ;;
  *) echo "reproflake: unknown variation '$vary'" >&2; exit 1 ;;
  esac
done
# Inside the namespaces, just before the step runs.
vary_inside() {
  if [ -n "$varyHost" ]; then
    hostname reproflake-varied
    # Busybox has no domainname applet (and /proc/sys is not ours): the root's, if any.
    [ ! -x "$root/bin/domainname" ] || chroot "$root" /bin/domainname reproflake-varied.invalid
  fi
  [ -z "$varyUmask" ] || umask "$varyUmask"
}
# ---- end: the variations of `reproflake verify` ----------------------------------

if [ "$1" != inner ]; then
  export PATH="$applets"
  set -f
  mkdir -p "$root" "$work/results/$stepName" "$scratch/home/.config/matplotlib" "$out"
  # Plotting defaults that keep figures bit-for-bit: matplotlib otherwise draws random
  # SVG ids. A matplotlibrc in the step's working directory still takes precedence.
  printf '%s\n' 'backend: Agg' 'svg.hashsalt: reproflake' \
    >"$scratch/home/.config/matplotlib/matplotlibrc"
  tab='	'
  # Sources are copied (scripts see ordinary, writable files), data is linked.
  while IFS="$tab" read -r rel target; do
    [ -n "$rel" ] || continue
    case "$rel" in */*) mkdir -p "$work/${rel%/*}" ;; esac
    cp "$target" "$work/$rel"
    chmod u+w "$work/$rel"
  done <<EOF
$sourceCopies
EOF
  while IFS="$tab" read -r rel target; do
    [ -n "$rel" ] || continue
    case "$rel" in */*) mkdir -p "$work/${rel%/*}" ;; esac
    if [ -e "$work/$rel" ] || [ -L "$work/$rel" ]; then rm -rf "${work:?}/$rel"; fi
    ln -s "$target" "$work/$rel"
  done <<EOF
$inputLinks$needLinks
EOF
  [ "$1" != shell ] || exec unshare -r -m -n "$busybox" sh -e "$0" inner shell
  # $varyUts: see the variations of `reproflake verify` above.
  exec unshare -r -m $varyUts "$busybox" sh -e "$0" inner
fi
mode="${2:-step}"

# One line of the mount table mounted below with a single `mount -a` (a mount
# command per directory was a fork and exec each). Fields escape backslash, space
# and tab as fstab does.
mount_entry() {
  src="${1//\\/\\134}"; src="${src// /\\040}"; src="${src//	/\\011}"
  dst="${2//\\/\\134}"; dst="${dst// /\\040}"; dst="${dst//	/\\011}"
  printf '%s %s none %s 0 0\n' "$src" "$dst" "$3" >>"$fstab"
}

# Bounded: a step writes its files in /work, $OUT and /tmp, all on disk.
mount -t tmpfs -o size=64m,mode=755 reproflake-root "$root"
: >"$fstab"
# The root's top-level links are copied; its directories become mount points
# (all made by one mkdir; hidden ones stay empty, as dev, proc and tmp get theirs below).
set -- "$root/dev" "$root/proc" "$root/tmp" "$root/nix/store" "$root/work"
for entry in "$rootfs"/* "$rootfs"/.[!.]*; do
  name="${entry##*/}"
  if [ -L "$entry" ]; then
    cp -P "$entry" "$root/$name"
  elif [ -d "$entry" ]; then
    set -- "$@" "$root/$name"
    case "$name" in
      .*|dev|proc|tmp) ;;
      *) mount_entry "$entry" "$root/$name" rbind ;;
    esac
  fi
done
set -f
mkdir -p "$@"
mount_entry /dev "$root/dev" rbind
mount_entry /proc "$root/proc" rbind
mount_entry /nix/store "$root/nix/store" rbind
mount_entry "$scratch" "$root/tmp" rbind
mount_entry "$work" "$root/work" rbind
mount_entry "$out" "$root/work/results/$stepName" bind
# A GPU step's driver libraries: lent by this machine's pre-build hook (reproflake/gpuhook.py)
# to steps that require a GPU feature only; the device nodes come with /dev.
gpuLibs=""
if [ -d /.reproflake-gpu ]; then
  mkdir -p "$root/.reproflake-gpu"
  mount_entry /.reproflake-gpu "$root/.reproflake-gpu" rbind
  gpuLibs="LD_LIBRARY_PATH=/.reproflake-gpu/lib"
fi
mount -a -T "$fstab"

# The step's own variables (names are checked by reproflake: [A-Za-z_][A-Za-z0-9_]*).
set --
for name in $varNames; do
  eval "value=\${var_$name}"
  set -- "$@" "$name=$value"
done

run="$stepRun"
if [ "$mode" = shell ]; then
  run="${shellCommand:-if [ -x /bin/bash ]; then exec /bin/bash; fi; exec /bin/sh}"
fi
status=0
vary_inside
# $vary*: the variations of `reproflake verify` (empty in a first build), and $gpuLibs,
# word lists split on purpose.
# shellcheck disable=SC2086
$varyPrefix chroot "$root" $varyInRoot /usr/bin/env -i -C /work \
  PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin \
  HOME=/tmp/home TMPDIR=/tmp TZ=UTC LANG=C.UTF-8 LC_ALL=C.UTF-8 \
  SOURCE_DATE_EPOCH="$sourceDateEpoch" FORCE_SOURCE_DATE=1 \
  PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0 \
  OPENBLAS_CORETYPE="$openblasCoretype" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
  MKL_NUM_THREADS=1 OUT="/work/results/$stepName" REPROFLAKE_STEP="$stepName" \
  $gpuLibs $varyEnv $varyCpus "$@" /bin/sh -ec "$run" || status=$?
[ "$mode" != shell ] || exit "$status"
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
