# Configures an environment's root the way `dpkg --configure -a` configures a
# freshly unpacked system (mmdebstrap's model: unpack, then configure in a chroot).
# Called by rootfs.sh in three stages; attributes arrive as variables.
#
#   register   (busybox, as the build user) write dpkg's database for the packages
#              rootfs.sh unpacked: each is "install ok unpacked", its conffiles set
#              aside as *.dpkg-new, its trigger interests recorded
#   chroot     (busybox, in a new user and mount namespace) mount /dev and /proc into
#              the root and run stage `run` there with the root's own /bin/sh
#   run        (the root's dash, chrooted) preinst scripts, then dpkg --configure -a
#   normalise  (busybox) remove or fix what varies between runs
#
# There is no network (Nix's sandbox), services are never started (policy-rc.d),
# debconf asks nothing and tools that read the clock see SOURCE_DATE_EPOCH.
stage="$1"
admin="$out/var/lib/dpkg"
control="$NIX_BUILD_TOP/control"
# The script inside the root while it is configured (removed by `normalise`).
inroot=/.reproflake-configure.sh

# A field of a control file ($1), continuation lines excluded.
field() {
  awk -v f="$2" 'tolower($0) ~ "^" tolower(f) ":" { sub(/^[^:]*:[ \t]*/, ""); print; exit }' "$1"
}

# The names of the Essential packages in a dpkg status file and of everything they
# depend on (Pre-Depends and Depends; the first alternative present, real or provided).
# shellcheck disable=SC2016 # Perl's own variables
essential_closure='
  local $/ = "";
  my (%pkg, %provider);
  while (<>) {
    s/\n[ \t]+/ /g;
    my %f = map { /^([^:]+):\s*(.*)$/ ? (lc $1, $2) : () } split /\n/;
    $pkg{$f{package}} = \%f;
    for (split /\s*,\s*/, $f{provides} // "") { s/[\s(].*//; $provider{$_} //= $f{package} }
  }
  my @queue = grep { ($pkg{$_}{essential} // "") eq "yes" } sort keys %pkg;
  my %seen = map { $_ => 1 } @queue;
  while (defined(my $name = shift @queue)) {
    my $deps = join ",", grep { defined } @{$pkg{$name}}{"pre-depends", "depends"};
    for my $group (split /\s*,\s*/, $deps) {
      for my $alt (split /\s*\|\s*/, $group) {
        $alt =~ s/[\s(:].*//s;
        my $target = exists $pkg{$alt} ? $alt : $provider{$alt};
        next unless defined $target;
        push @queue, $target unless $seen{$target}++;
        last;
      }
    }
  }
  print "$_\n" for sort keys %seen;
'

case "$stage" in
register)
  mkdir -p "$admin/info" "$admin/triggers" "$admin/updates" "$admin/alternatives"
  : >"$admin/status.new"
  : >"$admin/triggers/File.new"
  for dir in "$control"/*; do
    name="$(field "$dir/control" Package)"
    arch="$(field "$dir/control" Architecture)"
    # dpkg names a Multi-Arch: same package's files after its architecture too.
    info="$name"
    [ "$(field "$dir/control" Multi-Arch)" != same ] || info="$name:$arch"
    # The file list in dpkg's form: "/." for the root, no "./" prefix, no trailing "/".
    sed -e 's|^\./$|/.|' -e 's|^\.||' -e 's|\(.\)/$|\1|' "$dir/.files" >"$admin/info/$info.list"
    for f in "$dir"/*; do
      case "${f##*/}" in
      control | conffiles) ;;
      *) cp "$f" "$admin/info/$info.${f##*/}" ;;
      esac
    done
    {
      echo "Package: $name"
      echo "Status: install ok unpacked"
      grep -v -i '^Package:' "$dir/control" | sed '/^[ \t]*$/d'
      if [ -s "$dir/conffiles" ]; then
        # As dpkg leaves a first installation: each conffile beside its place as
        # *.dpkg-new, to be put in place (and hashed) when the package is configured.
        echo "Conffiles:"
        while read -r conffile _flags; do
          [ -n "$conffile" ] || continue
          if [ -e "$out$conffile" ] || [ -L "$out$conffile" ]; then
            mv "$out$conffile" "$out$conffile.dpkg-new"
          fi
          echo " $conffile newconffile"
        done <"$dir/conffiles"
      fi
      echo
    } >>"$admin/status.new"
    if [ -f "$dir/triggers" ]; then
      # Interests only: an activation while unpacking does nothing, because no
      # interested package is configured yet (its postinst configure does the work).
      while read -r kind trigger _rest; do
        case "$kind" in
        # "interest" and "interest-await" are the same (libc-bin declares the latter).
        interest | interest-await) suffix="" ;;
        interest-noawait) suffix=/noawait ;;
        *) continue ;;
        esac
        case "$trigger" in
        /*) echo "$trigger $info$suffix" >>"$admin/triggers/File.new" ;;
        *) echo "$info$suffix" >>"$admin/triggers/$trigger" ;;
        esac
      done <"$dir/triggers"
    fi
  done
  mv "$admin/status.new" "$admin/status"
  if [ -s "$admin/triggers/File.new" ]; then
    mv "$admin/triggers/File.new" "$admin/triggers/File"
  else
    rm "$admin/triggers/File.new"
  fi
  : >"$admin/available"
  : >"$admin/diversions"
  : >"$admin/statoverride"
  : >"$admin/triggers/Unincorp"
  # Services are never started while configuring (invoke-rc.d and deb-systemd-invoke ask this).
  mkdir -p "$out/usr/sbin"
  printf '#!/bin/sh\nexit 101\n' >"$out/usr/sbin/policy-rc.d"
  chmod 755 "$out/usr/sbin/policy-rc.d"
  mkdir -p "$out/tmp" "$out/dev" "$out/proc" "$out/root" "$out/run/reproflake" "$out/var/tmp"
  # Two things the sandbox refuses, which the Nix store could not record anyway (every
  # file in it is root's, without setuid or setgid bits): owners other than the one user
  # id the sandbox has (EINVAL), and setuid/setgid modes (Nix's seccomp filter: EPERM).
  # While configuring, chown and chgrp leave such a file as it is, and chmod sets the
  # mode without those bits.
  for tool in chown chgrp; do
    cat >"$out/run/reproflake/$tool" <<EOF
#!/bin/sh
err="\$(/bin/$tool "\$@" 2>&1)" && exit 0
case "\$err" in *"Invalid argument"*) exit 0 ;; esac
echo "\$err" >&2
exit 1
EOF
  done
  cat >"$out/run/reproflake/chmod" <<'EOF'
#!/bin/sh
err="$(/bin/chmod "$@" 2>&1)" && exit 0
case "$err" in *"Operation not permitted"*) ;; *) echo "$err" >&2; exit 1 ;; esac
for arg; do
  shift
  case "$arg" in
  [0-7][0-7][0-7][0-7]) arg="0${arg#?}" ;;
  [ugoa]*[+=-]*s*) arg="$(echo "$arg" | sed 's/s//g')" ;;
  esac
  set -- "$@" "$arg"
done
exec /bin/chmod "$@"
EOF
  chmod 755 "$out"/run/reproflake/*
  ;;

chroot)
  mount --rbind /dev "$out/dev"
  mount --rbind /proc "$out/proc"
  cp "$configureScript" "$out$inroot"
  # A fixed clock: tools that ignore SOURCE_DATE_EPOCH (Knuth's tex, for one, dumps the
  # time into tex.fmt) see it through libfaketime, frozen; monotonic clocks still run.
  set --
  for lib in "$out"/usr/lib/*/faketime/libfaketime.so.1; do
    [ -e "$lib" ] || continue
    set -- "LD_PRELOAD=${lib#"$out"}" DONT_FAKE_MONOTONIC=1 \
      "FAKETIME=$(date -u -d "@$sourceDateEpoch" '+%Y-%m-%d %H:%M:%S')"
  done
  # Without address space randomisation where setarch is there: Lua (LuaTeX's formats)
  # seeds its string hashes with addresses.
  [ ! -x "$out/usr/bin/setarch" ] || set -- "$@" setarch "$(uname -m)" -R
  # Nothing of the build's environment is inherited: only what is set here.
  chroot "$out" /usr/bin/env -i \
    PATH=/run/reproflake:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root TMPDIR=/tmp TZ=UTC LANG=C.UTF-8 LC_ALL=C.UTF-8 \
    SOURCE_DATE_EPOCH="$sourceDateEpoch" FORCE_SOURCE_DATE=1 \
    PYTHONHASHSEED=0 PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0 \
    DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true DEBCONF_NOWARNINGS=yes \
    "$@" /bin/sh -e "$inroot" run
  ;;

run)
  # (No awk here: it is an alternative that mawk's postinst has not made yet.)
  packages="$(dpkg-query -W -f '${binary:Package} ${Package} ${Architecture} ${Essential} ${Version}\n')"
  # preinst as dpkg runs it before unpacking a package that was never installed.
  echo "$packages" | while read -r info name arch _essential version; do
    script="/var/lib/dpkg/info/$info.preinst"
    [ -x "$script" ] || continue
    if ! DPKG_MAINTSCRIPT_PACKAGE="$name" DPKG_MAINTSCRIPT_ARCH="$arch" \
      DPKG_MAINTSCRIPT_NAME=preinst DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT=1 \
      DPKG_ROOT="" DPKG_ADMINDIR=/var/lib/dpkg \
      "$script" install >/tmp/preinst.log 2>&1; then
      cat /tmp/preinst.log >&2
      echo "reproflake: package $name $version: its preinst script failed (output above)" >&2
      exit 1
    fi
  done
  rm -f /tmp/preinst.log
  # The Essential set and what it depends on first, as debootstrap and apt do: other
  # packages' scripts use it without declaring it (awk, for one, is an alternative that
  # mawk's postinst makes). perl-base is Essential and works before it is configured.
  essential=""
  if [ -x /usr/bin/perl ]; then
    essential="$(perl -e "$essential_closure" /var/lib/dpkg/status)"
  fi
  : >/tmp/configure.log
  # shellcheck disable=SC2086 # one argument per package name
  if { [ -n "$essential" ] && ! dpkg --configure $essential >>/tmp/configure.log 2>&1; } ||
    ! dpkg --configure -a >>/tmp/configure.log 2>&1; then
    cat /tmp/configure.log >&2
    failed="$(sed -n '/^Errors were encountered while processing:/,$ { /^ /p }' /tmp/configure.log | tr -d ' ' | paste -sd ' ')"
    echo "reproflake: configuring the environment failed: maintainer scripts of ${failed:-some packages} failed (dpkg's output above)" >&2
    exit 1
  fi
  # Packages left unconfigured (a dependency outside the environment) are errors too.
  left="$(dpkg-query -W -f '${db:Status-Abbrev} ${binary:Package}\n' | grep -v '^ii ' | sed 's/.* //' | tr '\n' ' ')"
  if [ -n "$left" ]; then
    cat /tmp/configure.log >&2
    echo "reproflake: configuring the environment left packages unconfigured: $left" >&2
    exit 1
  fi
  ;;

normalise)
  rm -f "$out$inroot" "$out/usr/sbin/policy-rc.d"
  # Logs, backups of dpkg's and debconf's databases, locks.
  rm -f "$out/var/log/dpkg.log" "$out/var/log/alternatives.log" \
    "$admin"/*-old "$admin/lock" "$admin/lock-frontend" "$admin/triggers/Lock" \
    "$out"/var/cache/debconf/*-old "$out/var/cache/ldconfig/aux-cache"
  # Logs of the TeX formats and font maps made (they carry the clock and memory use).
  if [ -d "$out/var/lib/texmf" ]; then
    find "$out/var/lib/texmf" -type f -name '*.log' -exec rm -f {} +
  fi
  # Scratch space of the scripts.
  for dir in tmp var/tmp run; do
    rm -rf "${out:?}/$dir"
    mkdir "$out/$dir"
  done
  ;;

*)
  echo "configure.sh: unknown stage '$stage'" >&2
  exit 1
  ;;
esac
