# Writes one OCI image to $out: reproflake's image writer ($writer, standard-library
# Python, the same code `reproflake image` runs) run by an environment's own python3
# ($python, a root of unpacked Debian packages) through that root's dynamic loader, since
# the sandbox has no /lib. The job ($jobPath) names the recipe, the store paths, the
# format and the compression.
root="$python"
lib="$root/lib/x86_64-linux-gnu:$root/usr/lib/x86_64-linux-gnu"
# -I: no user site, no PYTHON* variables; -S: no site-packages (standard library only).
exec "$root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$lib" \
  "$root/usr/bin/python3" -I -S -c '
import sys
sys.path.insert(0, sys.argv[1])
from reproflake.artifacts import recipe
sys.exit(recipe.main(sys.argv[2:]))
' "$writer" "$jobPath" "$out"
