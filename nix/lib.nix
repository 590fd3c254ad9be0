# reproflake's Nix library: its one entry point (docs/nix.md).
#
#   (import ./lib.nix).mkPipeline { src = ./.; data = builtins.fromJSON (builtins.readFile ./.reproflake/build.json); }
#
# `src` is the project's directory (the flake's own `./.`): it holds .reproflake/seed and
# every source and tracked input file the data names. `data` is build.json as
# `reproflake lock` writes it; its shape is reproflake.nixgen.BuildData and its `version`
# must be `dataVersion`. The result is a flake's outputs:
#   packages.<system>       one content-addressed derivation per step, and `default` (all steps)
#   checks.<system>.seed    the bootstrap seed re-extracted from its pinned .deb
#   legacyPackages.<system> environments, inputs, debs, wheels, verify (each step rebuilt apart),
#                           drvPaths.{steps,verify} (every step's .drv path, one evaluation),
#                           gcroots (links to every root, .deb and wheel the lock needs)
#
# Generated projects import this file from their vendored copy (.reproflake/lib/) or take it
# from reproflake's flake (`inputs.reproflake.lib`); both give the same derivations.
let
  inherit (builtins) concatStringsSep elem filter isAttrs toJSON;

  dataVersion = 1;
  systems = [ "x86_64-linux" ];
  required = [ "version" "system" "sourceDateEpoch" "seed" "debs" "wheels" "environments" "inputs" "steps" ];

  fail = problem: throw "reproflake: ${problem}";
  regenerate = "run `reproflake lock` with the reproflake this library comes from (or point the flake's reproflake input at the reproflake that wrote the data)";

  # The data's shape is checked here, once, so a mismatch between the data and the library
  # is named instead of surfacing as a missing attribute deep inside a derivation.
  checked = data:
    let missing = filter (k: !(data ? ${k})) required; in
    if !isAttrs data then fail "the pipeline data must be an attribute set (build.json read with builtins.fromJSON)"
    else if missing != [ ] then fail "the pipeline data lacks ${concatStringsSep ", " missing}; ${regenerate}"
    else if data.version != dataVersion then
      fail "the pipeline data is version ${toJSON data.version}, this library reads version ${toString dataVersion}; ${regenerate}"
    else if !elem data.system systems then
      fail "the pipeline data is for system ${toJSON data.system}; this library builds for ${concatStringsSep ", " systems}"
    else data;
in
{
  inherit dataVersion systems;

  # `revision`: the commit the source is at (a flake's `self.rev`), which images record.
  mkPipeline = { src, data, revision ? "" }:
    import ./default.nix { inherit src revision; data = checked data; };
}
