# The Aspen package: `aspen-node` and `aspen-cli` with their Python dependencies (pyproject.toml).
{ lib, python3Packages }:

python3Packages.buildPythonApplication {
  pname = "aspen";
  version = "0.1.0";
  pyproject = true;

  # Only what the build needs: a local .venv or data dirs must not end up in the store.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [ ../aspen ../pyproject.toml ../README.md ];
  };

  build-system = with python3Packages; [ setuptools wheel ];

  dependencies = with python3Packages; [
    aioquic
    msgpack
    pydantic
    click
    structlog
    cryptography
    sortedcontainers
    google-crc32c
    blake3
    uvloop
    prometheus-client
  ];

  # The test suite starts networked processes; the NixOS VM tests (nix/tests) exercise the package.
  doCheck = false;
  pythonImportsCheck = [ "aspen" "aspen.node.main" "aspen.cli.main" ];

  meta = {
    description = "Distributed, linearizable key-value store with its own Raft";
    license = lib.licenses.mit;
    mainProgram = "aspen-node";
    platforms = lib.platforms.linux;
  };
}
