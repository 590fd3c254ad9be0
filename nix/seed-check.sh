# Re-extracts the busybox seed from its pinned .deb, using the seed itself,
# and checks both are the same bytes.
export PATH="$applets"
cd "$NIX_BUILD_TOP" || exit 1
dpkg-deb -x "$deb" extracted
if ! cmp "extracted/$member" "$busybox"; then
  echo "reproflake: the seed differs from $member in its pinned .deb" >&2
  exit 1
fi
mkdir -p "$out"
sha256sum "$busybox" | cut -d' ' -f1 >"$out/sha256"
