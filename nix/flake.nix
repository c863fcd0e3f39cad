# Flake interface (copy or symlink to the repository root to use `nix build .#aspen`; here it is
# `nix build 'git+file:.?dir=nix#aspen'` from the root). Same outputs as default.nix.
{
  description = "Aspen: a distributed, linearizable key-value store with its own Raft";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      module = ./module.nix;
    in
    {
      packages = forAll (pkgs: rec {
        aspen = pkgs.callPackage ./package.nix { };
        default = aspen;
      });
      nixosModules.default = module;
      checks = forAll (pkgs: {
        single-node = import ./tests/single-node.nix { inherit pkgs module; };
        cluster = import ./tests/cluster.nix { inherit pkgs module; };
      });
    };
}
