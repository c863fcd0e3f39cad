# Entry point without flakes:
#   nix-build nix -A aspen                 the package (aspen-node, aspen-cli)
#   nix-build nix -A tests.single-node     NixOS VM test, one node
#   nix-build nix -A tests.cluster         NixOS VM test, three nodes with failover
# and `imports = [ ./nix/module.nix ];` in a NixOS configuration for `services.aspen-node`.
{ pkgs ? import <nixpkgs> { } }:

let
  module = ./module.nix;
in
{
  aspen = pkgs.callPackage ./package.nix { };
  nixosModules.default = module;
  tests = {
    single-node = import ./tests/single-node.nix { inherit pkgs module; };
    cluster = import ./tests/cluster.nix { inherit pkgs module; };
  };
}
