# reproflake's static Nix library. Copied into each project as .reproflake/lib/.
#
# All project-specific facts arrive as data (`data`, parsed from
# .reproflake/build.json); nothing here is generated, and nothing the user
# wrote is ever spliced into Nix source. Builders are the shell scripts beside
# this file, run by the pinned static busybox seed.
{ src, data }:
let
  inherit (builtins) attrNames concatStringsSep listToAttrs map;

  system = data.system;
  forAttrs = attrs: f: listToAttrs (map (name: { inherit name; value = f name attrs.${name}; }) (attrNames attrs));

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
  fetch = f: if builtins.substring 0 7 f.url == "file://"
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

  debs = forAttrs data.debs (_: fetch);
  wheels = forAttrs data.wheels (_: fetch);

  # A root filesystem per environment: the unpacked .debs plus the wheels.
  environments = forAttrs data.environments (name: env: derivation {
    name = "reproflake-env-${name}";
    inherit system busybox applets;
    builder = busybox;
    args = [ "sh" "-e" ./rootfs.sh ];
    debs = map (k: debs.${k}) env.debs;
    wheels = map (k: wheels.${k}) env.wheels;
    pythonVersion = env.python;
    configureScript = ./configure.sh;
    sourceDateEpoch = toString data.sourceDateEpoch;
  });

  # An input file enters the store by content. Tracked files come from the flake's
  # source; large files outside git are added by `reproflake build` (or by hand with
  # the command the stub prints) under the same content-addressed store path.
  inputFile = name: i:
    if i.kind == "url" then fetch { inherit (i) url sha256; name = i.storeName; }
    else if i.kind == "tracked" then builtins.path {
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
  inputs = forAttrs data.inputs (name: i: map (f: { inherit (f) path; store = inputFile name f; }) i.files);

  lines = xs: concatStringsSep "" (map (x: x + "\n") xs);

  # A step sees only what it declares: its source files (each taken from the
  # project by itself, so undeclared files can change freely, and evaluation stays
  # linear in the number of files), its inputs, the outputs of the steps it needs,
  # its environment and its variables.
  source = f: builtins.path { path = src + "/${f}"; name = "reproflake-source"; };
  stepDrv = extra: name: s:
    derivation ({
      name = "reproflake-step-${name}";
      inherit system busybox applets;
      builder = busybox;
      args = [ "sh" "-e" ./step.sh ];
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
  steps = forAttrs data.steps (stepDrv { });

  # The same steps built a second time, independently (`reproflake verify`): outputs are
  # content-addressed, so a reproducible step lands on exactly the same store path.
  verify = forAttrs data.steps (stepDrv { reproflakeVerify = "independent rebuild"; });

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
  seedCheck = derivation {
    name = "reproflake-seed-check";
    inherit system busybox applets;
    builder = busybox;
    args = [ "sh" "-e" ./seed-check.sh ];
    deb = debs.${data.seed.deb};
    member = data.seed.member;
  };

  all = derivation {
    name = "reproflake-all";
    inherit system busybox applets;
    builder = busybox;
    args = [ "sh" "-e" ./link-all.sh ];
    links = lines (map (n: "${n}\t${steps.${n}}") (attrNames steps));
  };
in
{
  packages.${system} = steps // { default = all; };
  checks.${system} = { seed = seedCheck; };
  legacyPackages.${system} = {
    inherit environments inputs debs wheels verify shells;
    # Every step's .drv path from one evaluation: `reproflake build` realises these
    # rather than naming each step (Nix 2.8 reads the flake again for every name).
    drvPaths = {
      steps = builtins.mapAttrs (_: d: d.drvPath) steps;
      verify = builtins.mapAttrs (_: d: d.drvPath) verify;
    };
  };
}
