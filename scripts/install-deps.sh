#!/usr/bin/env bash
# Installs what reproflake needs on Debian 12 (as root): Nix from Debian's nix-bin,
# git, Graphviz, the OCI tools (skopeo, umoci, podman, runc, docker-registry), and reproflake with its Python dependencies in ./.venv.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
need=()
command -v nix >/dev/null || need+=(nix-bin)
command -v git >/dev/null || need+=(git)
command -v dot >/dev/null || need+=(graphviz)
# Locks check the Debian suite's signature.
command -v gpgv >/dev/null || need+=(gpgv)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
command -v python3 >/dev/null || need+=(python3)
# OCI clients the image tests check reproflake's images with (and skopeo for --push).
for tool in skopeo umoci podman runc docker-registry; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
# The remote-builder tests start their own sshd on 127.0.0.1 (the system's is not used).
command -v /usr/sbin/sshd >/dev/null || need+=(openssh-server)
# The test suite lints the builders' shell scripts.
command -v shellcheck >/dev/null || need+=(shellcheck)
# Debian's own python3 needs python3-venv for `python3 -m venv` to work.
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# nix-bin's postinst creates the nixbld group and users; make sure the store exists.
mkdir -p /nix/store /nix/var/nix/gcroots/auto /nix/var/nix/profiles

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 2> >(grep -v '^WARNING: Location' >&2)
ln -sf "$PWD/.venv/bin/reproflake" /usr/local/bin/reproflake
echo "installed: $(nix --version), $(.venv/bin/reproflake --version)"
