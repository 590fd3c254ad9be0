# reproflake as a flake: its Nix library, its project templates and the library's checks.
# No inputs: evaluating it never contacts a registry, and nothing here needs nixpkgs.
# docs/nix.md describes each output.
{
  description = "reproflake: hermetic, bit-for-bit reproducible pipelines built by Nix";

  outputs = { self }:
    let
      inherit (builtins) attrNames filter listToAttrs readDir;

      # The static library generated projects vendor as .reproflake/lib/ (nix/lib.nix).
      lib = import ./nix/lib.nix;

      # Every directory of templates/ is a template; `nix flake init -t` copies it verbatim
      # and `reproflake lock` then fills in what `reproflake init` would have (docs/nix.md).
      descriptions = {
        minimal = "A reproflake project with one step in a Debian environment";
        python = "A reproflake pipeline of Python steps (Debian's Python, numpy from a pinned wheel)";
        paper = "A reproflake pipeline that builds a paper's figures, tables and PDF";
      };
      names = filter (n: (readDir ./templates).${n} == "directory") (attrNames (readDir ./templates));
      template = name: {
        path = ./templates + "/${name}";
        description = descriptions.${name} or "A reproflake project (template ${name})";
        welcomeText = ''
          A reproflake project from the ${name} template. Next:

              reproflake lock    # fills in this machine's Debian mirror and pins every input
              reproflake build

          Then commit it: the lock and the generated flake let anyone rebuild it with `nix build`.
        '';
      };
      templates = listToAttrs (map (name: { inherit name; value = template name; }) names);
    in
    {
      inherit lib;
      templates = templates // { default = templates.python; };
      checks.x86_64-linux = import ./tests/nix/checks.nix { inherit lib templates; };
    };
}
