# The flake's checks (`nix flake check`): the library evaluated against fixture data.
#
# Pure evaluation: nothing is fetched and no Debian package is built. Each check is a set of
# named claims about the library's result; when one is false, evaluation stops with the
# check's and the claim's names. When all hold, the check is a derivation Nix builds with its
# builtin `buildenv` (no builder program, no nixpkgs): a directory holding the claims' list.
{ lib, templates }:
let
  inherit (builtins) all any attrNames attrValues concatStringsSep filter fromJSON getContext
    hasAttr isString listToAttrs map readFile removeAttrs sort split toFile toJSON tryEval
    unsafeDiscardStringContext;

  system = "x86_64-linux";
  src = ./fixture;
  data = fromJSON (readFile ./fixture/build.json);
  pipeline = d: lib.mkPipeline { inherit src; data = d; };
  result = pipeline data;
  packages = result.packages.${system};
  legacy = result.legacyPackages.${system};
  stepNames = attrNames data.steps;
  sorted = sort (a: b: a < b);

  check = name: claims:
    let failed = filter (claim: !claims.${claim}) (attrNames claims); in
    if failed != [ ] then throw "reproflake check '${name}' failed: ${concatStringsSep "; " failed}"
    else derivation {
      name = "reproflake-check-${name}";
      system = "builtin";
      builder = "builtin:buildenv";
      derivations = "";
      manifest = toFile "reproflake-check-${name}" (concatStringsSep "\n" (attrNames claims) + "\n");
    };

  # Whether evaluating `value` (deeply) fails with a throw or an assertion.
  fails = value: !(tryEval (builtins.deepSeq value value)).success;
  # The derivations (.drv paths) a derivation's attributes refer to.
  refers = drv: attrNames (getContext (toJSON (removeAttrs drv.drvAttrs [ "name" ])));
  dependsOn = drv: other: any (p: p == other.drvPath) (refers drv);
  # Whether a string reaches the derivation as one of its attributes, unchanged.
  carries = drv: value: any (v: v == value) (attrValues drv.drvAttrs);
  allDrvs = attrValues packages ++ attrValues legacy.environments ++ attrValues legacy.verify
    ++ attrValues legacy.debs ++ attrValues legacy.wheels ++ [ result.checks.${system}.seed ];
in
{
  outputs = check "outputs" {
    "mkPipeline returns packages, checks and legacyPackages" =
      attrNames result == [ "checks" "legacyPackages" "packages" ];
    "packages are the steps, default and image-NAME per image" =
      attrNames packages == sorted (stepNames ++ [ "default" ] ++ map (n: "image-${n}") (attrNames data.images));
    "checks hold the seed check" = attrNames result.checks.${system} == [ "seed" ];
    "legacyPackages hold debs, drvPaths, environments, gcroots, images, inputs, shells, verify, verifyVaried and wheels" =
      attrNames legacy == [ "debs" "drvPaths" "environments" "gcroots" "images" "inputs" "shells" "verify" "verifyVaried" "wheels" ];
    "images come in both formats, each with gzip or no compression" =
      all (n: attrNames legacy.images.${n} == [ "oci-archive" "oci-dir" ]
              && all (f: attrNames legacy.images.${n}.${f} == [ "gzip" "none" ]) [ "oci-archive" "oci-dir" ])
        (attrNames data.images);
    "one environment, deb and wheel per entry of the data" =
      attrNames legacy.environments == attrNames data.environments
      && attrNames legacy.debs == attrNames data.debs
      && attrNames legacy.wheels == attrNames data.wheels;
    "verify has every step" = attrNames legacy.verify == stepNames;
    "verifyVaried has every combination of the five variations, each with every step" =
      builtins.length (attrNames legacy.verifyVaried) == 32
      && all (k: attrNames legacy.verifyVaried.${k} == stepNames) (attrNames legacy.verifyVaried);
    "verify varies everything; none varies nothing" =
      all (n: legacy.verify.${n}.drvAttrs.reproflakeVary == "aslr cpus hostname time umask"
              && !(legacy.verifyVaried.none.${n}.drvAttrs ? reproflakeVary)) stepNames;
    "inputs list each file with its path" =
      map (f: f.path) legacy.inputs.measurements == [ "data/measurements.csv" ];
  };

  derivations = check "derivations" {
    "every output is a derivation that evaluates" =
      all (d: d.type == "derivation" && isString d.drvPath) allDrvs;
    "steps are named reproflake-step-NAME" = all (n: packages.${n}.name == "reproflake-step-${n}") stepNames;
    "steps build for the data's system" = all (n: packages.${n}.system == system) stepNames;
    "steps are content-addressed" =
      all (n: packages.${n}.drvAttrs.__contentAddressed && packages.${n}.drvAttrs.outputHashMode == "recursive") stepNames;
    "steps require their hardware's system features" =
      all (n: (packages.${n}.drvAttrs.requiredSystemFeatures or [ ]) == data.steps.${n}.systemFeatures) stepNames;
    "debs and wheels are fixed-output downloads of their pinned hash" =
      all (k: legacy.debs.${k}.drvAttrs.outputHash == data.debs.${k}.sha256
              && legacy.debs.${k}.drvAttrs.builder == "builtin:fetchurl") (attrNames data.debs)
      && all (k: legacy.wheels.${k}.drvAttrs.outputHash == data.wheels.${k}.sha256) (attrNames data.wheels);
    "verify rebuilds are derivations of their own" =
      all (n: legacy.verify.${n}.drvPath != packages.${n}.drvPath
              && legacy.verifyVaried.none.${n}.drvPath != packages.${n}.drvPath
              && legacy.verifyVaried.time.${n}.drvPath != legacy.verify.${n}.drvPath) stepNames;
    "default depends on every step" = all (n: dependsOn packages.default packages.${n}) stepNames;
    "a step depends on the steps it needs" = dependsOn packages.fit packages.prepare;
    "a step depends on no step it does not need" =
      !(dependsOn packages.prepare packages.fit) && !(dependsOn packages.hello packages.prepare);
    "a step depends on its environment only" =
      dependsOn packages.prepare legacy.environments.py && !(dependsOn packages.prepare legacy.environments.base);
    "image-NAME is the layout directory with gzip layers" =
      packages.image-model.drvPath == legacy.images.model.oci-dir.gzip.drvPath;
    "an image depends on its step, the steps it needs and its environment" =
      all (d: dependsOn packages.image-model d) [ packages.fit packages.prepare legacy.environments.py ];
    "an image depends on no other step" = !(dependsOn packages.image-model packages.hello);
    "an image's formats and compressions are derivations of their own" =
      legacy.images.model.oci-dir.none.drvPath != packages.image-model.drvPath
      && legacy.images.model.oci-archive.gzip.drvPath != packages.image-model.drvPath;
    "an image without an environment that has python3 is refused when built" =
      fails (pipeline (data // { images.model = data.images.model // { pythonEnv = ""; }; }))
        .packages.${system}.image-model.drvPath;
    "a hardware constraint changes the step's derivation" =
      (pipeline (data // { steps = data.steps // { fit = data.steps.fit // { hardware = ""; systemFeatures = [ ]; }; }; }))
        .packages.${system}.fit.drvPath != packages.fit.drvPath;
    # pin_profile travels inside the hardware entry and as one more feature (no attribute of its own).
    "a pinned GPU profile changes the step's derivation" =
      (pipeline (data // { steps = data.steps // { fit = data.steps.fit // {
        hardware = builtins.toJSON { cuda = "12.2"; gpu = "nvidia"; pin_profile = "NVIDIA H100 80GB HBM3, driver 550.54.15"; };
        systemFeatures = data.steps.fit.systemFeatures ++ [ "gpu-profile-0123456789abcdef" ]; }; }; }))
        .packages.${system}.fit.drvPath != packages.fit.drvPath;
  };

  hostile = check "hostile" {
    "a command with Nix syntax, quotes and newlines reaches the step unchanged" =
      carries packages.prepare data.steps.prepare.run;
    "a variable with Nix syntax reaches the step unchanged" =
      carries packages.prepare data.steps.prepare.variables.HOSTILE;
    "evaluating them evaluates nothing in them" = isString packages.prepare.drvPath;
    "an image label with Nix syntax reaches the image's job unchanged" =
      isString packages.image-model.drvPath
      && (fromJSON (unsafeDiscardStringContext packages.image-model.drvAttrs.job)).recipe.labels
        == data.images.model.labels;
    "the hostile command changes the derivation like any other" =
      (pipeline (data // { steps = data.steps // { prepare = data.steps.prepare // { run = "true"; }; }; }))
        .packages.${system}.prepare.drvPath != packages.prepare.drvPath;
  };

  entry = check "entry" {
    "mkPipeline is the library's default.nix with checked data" =
      (import ../../nix/default.nix { inherit src data; }).packages.${system}.default.drvPath
        == packages.default.drvPath;
    "the data version is 1" = lib.dataVersion == 1 && data.version == lib.dataVersion;
    "data of another version is refused" = fails (pipeline (data // { version = 2; })).packages;
    "data without steps is refused" = fails (pipeline (removeAttrs data [ "steps" ])).packages;
    "data for another system is refused" = fails (pipeline (data // { system = "aarch64-darwin"; })).packages;
    "data that is not an attribute set is refused" = fails (pipeline [ ]).packages;
  };

  templates = check "templates" (
    let
      lines = name: filter isString (split "\n" (readFile (templates.${name}.path + "/reproflake.toml")));
      has = name: line: any (l: l == line) (lines name);
    in
    listToAttrs (map (name: {
      name = "template ${name} leaves name, mirror and suite for `reproflake lock` to fill";
      value = has name ''name = "{{name}}"'' && has name "mirror = {{mirror}}" && has name "suite = {{suite}}";
    }) (attrNames templates))
    // {
      "there are the minimal and python templates" = all (n: hasAttr n templates) [ "minimal" "python" ];
    }
  );
}
