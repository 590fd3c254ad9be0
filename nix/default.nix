# reproflake's static Nix library. Copied into each project as .reproflake/lib/.
#
# All project-specific facts arrive as data (`data`, parsed from
# .reproflake/build.json); nothing here is generated, and nothing the user
# wrote is ever spliced into Nix source. Builders are the shell scripts beside
# this file, run by the pinned static busybox seed.
{ src, data, revision ? "" }:
let
  inherit (builtins) attrNames concatStringsSep listToAttrs map mapAttrs;

  system = data.system;

  # Every builder here but the applets' own: a script of this directory, run by the seed's
  # busybox with the applets on PATH; `attrs` are the derivation's other attributes.
  script = file: attrs: derivation ({
    inherit system busybox applets;
    builder = busybox;
    args = [ "sh" "-e" file ];
  } // attrs);

  # The bootstrap seed: one static busybox, vendored in the project and pinned by NAR hash.
  seed = builtins.path {
    path = src + "/.reproflake/seed";
    name = "reproflake-seed";
    sha256 = data.seed.narHash;
  };
  busybox = "${seed}/busybox";

  # Busybox's applets as a directory of links, made once: the builders put it on PATH
  # instead of running `busybox --install` each (hundreds of links made and removed per
  # build were most of a trivial step's time).
  applets = derivation {
    name = "reproflake-applets";
    inherit system busybox;
    builder = busybox;
    args = [ "sh" "-ec" "\"$busybox\" mkdir \"$out\"; \"$busybox\" --install -s \"$out\"" ];
  };

  # A file pinned by its flat sha256 (Debian's own hash for .debs, the index's for wheels).
  # file:// mirrors are read at evaluation time: the sandboxed fetcher cannot see the host's
  # files. Both ways give the same content-addressed store path.
  # A release archive made with --vendor carries the files in vendor/: taken from there
  # (no network), flat and by the same hash, they get the same content-addressed path.
  # A remote file stays the same fetch derivation, its output put in the store from the
  # vendored copy first (so Nix finds it valid and downloads nothing): the environments
  # that use it keep their derivations, and their store paths, in a vendored build.
  # (A git flake never sees vendor/ unless it is tracked.)
  fetch = f:
    let
      copy = src + "/vendor/${f.name}";
      vendored = builtins.path { path = copy; inherit (f) name sha256; recursive = false; };
      local = builtins.substring 0 7 f.url == "file://";
    in
    if builtins.pathExists copy
    then (if local then vendored else builtins.seq vendored (fetchRemote f))
    else if local
    then builtins.fetchurl { inherit (f) url sha256 name; }
    else fetchRemote f;
  fetchRemote = f: derivation {
    name = f.name;
    system = "builtin";
    builder = "builtin:fetchurl";
    url = f.url;
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = f.sha256;
    executable = false;
    unpack = false;
    preferLocalBuild = true;
    impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy" ];
  };

  debs = mapAttrs (_: fetch) data.debs;
  wheels = mapAttrs (_: fetch) data.wheels;

  # A root filesystem per environment: the unpacked .debs plus the wheels.
  environments = mapAttrs (name: env: script ./rootfs.sh {
    name = "reproflake-env-${name}";
    debs = map (k: debs.${k}) env.debs;
    wheels = map (k: wheels.${k}) env.wheels;
    pythonVersion = env.python;
    configureScript = ./configure.sh;
    sourceDateEpoch = toString data.sourceDateEpoch;
  }) data.environments;

  # An input file enters the store by content. Tracked files come from the flake's
  # source (so do files outside git that a release archive carries); large files outside
  # git are added by `reproflake build` (or by hand with the command the stub prints)
  # under the same content-addressed store path.
  inputFile = name: i:
    if i.kind == "url" then fetch { inherit (i) url sha256; name = i.storeName; }
    else if i.kind == "tracked" || builtins.pathExists (src + "/${i.path}") then builtins.path {
      path = src + "/${i.path}";
      name = i.storeName;
      sha256 = i.narHash;
    }
    else derivation {
      name = i.storeName;
      inherit system busybox;
      builder = busybox;
      args = [ "sh" "-c" "echo \"reproflake: input '$inputName' ($inputFile) is not in the Nix store; add it with: nix-store --add-fixed --recursive sha256 $inputFile (or run reproflake build)\" >&2; exit 1" ];
      inputName = name;
      inputFile = i.path;
      outputHashMode = "recursive";
      outputHashAlgo = "sha256";
      outputHash = i.narHash;
    };
  # Each input is one or more files (a glob input: every file it matched).
  inputs = mapAttrs (name: i: map (f: { inherit (f) path; store = inputFile name f; }) i.files) data.inputs;

  lines = xs: concatStringsSep "" (map (x: x + "\n") xs);

  # A step sees only what it declares: its source files (each taken from the
  # project by itself, so undeclared files can change freely, and evaluation stays
  # linear in the number of files), its inputs, the outputs of the steps it needs,
  # its environment and its variables.
  source = f: builtins.path { path = src + "/${f}"; name = "reproflake-source"; };
  stepDrv = extra: name: s:
    script ./step.sh ({
      name = "reproflake-step-${name}";
      stepName = name;
      stepRun = s.run;
      rootfs = environments.${s.env};
      sourceCopies = lines (map (f: "${f}\t${source f}") s.sourceFiles);
      inputLinks = lines (builtins.concatLists
        (map (i: map (f: "${f.path}\t${f.store}") inputs.${i}) s.inputs));
      needLinks = lines (map (n: "results/${n}\t${steps.${n}}") s.needs);
      outputsList = lines s.outputs;
      varNames = concatStringsSep " " (attrNames s.variables);
      sourceDateEpoch = toString data.sourceDateEpoch;
      openblasCoretype = data.environments.${s.env}.openblasCoretype;
      requiredSystemFeatures = s.systemFeatures;
      # Content-addressed: a rebuild to identical bytes stops here (early cutoff).
      __contentAddressed = true;
      outputHashMode = "recursive";
      outputHashAlgo = "sha256";
    } // (if s.hardware == "" then { } else {
      # The declared constraints themselves, so changing one changes the derivation.
      reproflakeHardware = s.hardware;
    }) // extra // listToAttrs (map (v: { name = "var_${v}"; value = s.variables.${v}; }) (attrNames s.variables)));
  steps = mapAttrs (stepDrv { }) data.steps;

  # The same steps built a second time, independently (`reproflake verify`): outputs are
  # content-addressed, so a reproducible step lands on exactly the same store path. The
  # second build varies what a step must not depend on (step.sh: reproflakeVary); every
  # combination of variations is its own set of derivations, named by the variations
  # joined with "_" ("none": a plain second build). `verify` varies all of them.
  variations = [ "aslr" "cpus" "hostname" "time" "umask" ];
  subsets = xs: if xs == [ ] then [ [ ] ]
    else let rest = subsets (builtins.tail xs); in rest ++ map (s: [ (builtins.head xs) ] ++ s) rest;
  varyKey = vs: if vs == [ ] then "none" else concatStringsSep "_" vs;
  verifyVaried = listToAttrs (map (vs: {
    name = varyKey vs;
    value = mapAttrs (stepDrv ({ reproflakeVerify = "independent rebuild"; }
      // (if vs == [ ] then { } else { reproflakeVary = concatStringsSep " " vs; }))) data.steps;
  }) (subsets variations));
  verify = verifyVaried.${varyKey variations};

  # What `reproflake shell` enters: each step's attributes with the outputs of the steps it
  # needs and its environment resolved by Nix, written down by step.sh (`describe`), which
  # then lays out the same /work from them outside the sandbox. Nothing of the step runs, so
  # no hardware is required here. `--env NAME`: an empty step in that environment.
  describe = label: stepDrv {
    name = "reproflake-shell-${label}";
    args = [ "sh" "-e" ./step.sh "describe" ];
    requiredSystemFeatures = [ ];
  };
  shells = {
    steps = builtins.mapAttrs (name: describe name name) data.steps;
    environments = builtins.mapAttrs (env: _: describe "env-${env}" "shell" {
      inherit env;
      run = "";
      sourceFiles = [ ];
      inputs = [ ];
      needs = [ ];
      outputs = [ ];
      variables = { };
      systemFeatures = [ ];
      hardware = "";
    }) data.environments;
  };

  # Re-extracts the seed from its pinned .deb with the seed itself: both must agree.
  seedCheck = script ./seed-check.sh {
    name = "reproflake-seed-check";
    deb = debs.${data.seed.deb};
    member = data.seed.member;
  };

  all = script ./link-all.sh {
    name = "reproflake-all";
    links = lines (map (n: "${n}\t${steps.${n}}") (attrNames steps));
  };

  # Everything the lock makes a build need besides the steps' own outputs: each
  # environment's root, every fetched .deb and wheel, the seed. `reproflake build` keeps a
  # garbage-collector root on it, so collecting garbage never throws away what the next
  # build needs.
  gcroots = script ./link-all.sh {
    name = "reproflake-gcroots";
    links = lines (
      map (n: "env-${n}\t${environments.${n}}") (attrNames environments)
      ++ map (k: "deb-${k}\t${debs.${k}}") (attrNames debs)
      ++ map (k: "wheel-${k}\t${wheels.${k}}") (attrNames wheels)
      ++ [ "seed\t${seed}" ]);
  };

  # OCI images (`nix build .#image-NAME`): reproflake's own image writer
  # (.reproflake/image, standard-library Python, vendored in every project) run by an
  # environment's python3 in the sandbox, over the same recipe and store paths as
  # `reproflake image NAME`, so both write the same bytes. gzip or uncompressed layers
  # only: zstd needs a module Debian's Python does not have.
  writer = builtins.path { path = src + "/.reproflake/image"; name = "reproflake-image-writer"; };
  fileSha256 = f: builtins.hashFile "sha256" (src + "/${f}");
  imageDrv = name: i: format: compression:
    if i.pythonEnv == "" then
      throw "reproflake: image '${name}' cannot be built by Nix: no environment has Debian's python3, which writes it (add python3 to one environment's debian list)"
    else script ./image.sh {
      name = "reproflake-image-${name}";
      inherit writer;
      python = environments.${i.pythonEnv};
      job = builtins.toJSON {
        recipe = i;
        inherit format compression;
        resolved = {
          envRoot = environments.${i.env};
          debs = map (k: debs.${k}) i.debs;
          sources = listToAttrs (map (f: { name = f; value = source f; }) i.sources);
          workspace = map (f: [ f (source f) ]) i.sources
            ++ builtins.concatLists (map (n: map (f: [ f.path f.store ]) inputs.${n}) i.inputs)
            ++ map (n: [ "results/${n}" steps.${n} ]) i.needs;
          outputs = listToAttrs (map (n: { name = n; value = steps.${n}; }) ([ i.step ] ++ i.needs));
          specSha256 = fileSha256 "reproflake.toml";
          lockSha256 = fileSha256 "reproflake.lock";
          inherit revision;
          source = "";
        };
      };
      passAsFile = [ "job" ];
    };
  imageData = data.images or { };
  # Every format and compression the sandbox writes, by image.
  images = mapAttrs (name: i:
    builtins.listToAttrs (map (format: {
      name = format;
      value = builtins.listToAttrs (map (compression: {
        name = compression;
        value = imageDrv name i format compression;
      }) [ "gzip" "none" ]);
    }) [ "oci-dir" "oci-archive" ])) imageData;
  # `nix build .#image-NAME` is `reproflake image NAME`'s default: a layout directory, gzip.
  imagePackages = listToAttrs (map (n: { name = "image-${n}"; value = images.${n}.oci-dir.gzip; }) (attrNames imageData));
in
{
  packages.${system} = steps // imagePackages // { default = all; };
  checks.${system} = { seed = seedCheck; };
  legacyPackages.${system} = {
    inherit environments inputs debs wheels verify verifyVaried gcroots images shells;
    # Every step's .drv path from one evaluation: `reproflake build` realises these
    # rather than naming each step (Nix 2.8 reads the flake again for every name).
    drvPaths = {
      steps = mapAttrs (_: d: d.drvPath) steps;
      verify = mapAttrs (_: d: d.drvPath) verify;
      verifyVaried = mapAttrs (_: set: mapAttrs (_: d: d.drvPath) set) verifyVaried;
    };
  };
}
