# NixOS module: `services.aspen-node` runs one Aspen node under systemd (docs/operations.md §9).
{ config, lib, pkgs, ... }:

let
  cfg = config.services.aspen-node;
  inherit (lib) mkOption mkEnableOption mkIf types;
in
{
  options.services.aspen-node = {
    enable = mkEnableOption "an Aspen key-value store node";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The Aspen package (provides aspen-node and aspen-cli).";
    };

    nodeId = mkOption {
      type = types.ints.positive;
      example = 1;
      description = "Raft node id: a distinct non-zero integer per node of the cluster.";
    };

    cookie = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = ''
        The cluster secret, shared by every node and client. It ends up world-readable in the Nix
        store; prefer `cookieFile`.
      '';
    };

    cookieFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/secrets/aspen-cookie";
      description = ''
        A file holding the cluster secret (just the secret, one line). Read at start through a
        systemd credential, so it never enters the Nix store.
      '';
    };

    dataDir = mkOption {
      type = types.str;
      default = "/var/lib/aspen-node";
      description = "Data directory: WAL, snapshots, node identity and cluster-ticket.txt.";
    };

    host = mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "10.0.0.1";
      description = ''
        Address to bind and to advertise to the other nodes; it must be reachable from them
        (not 0.0.0.0).
      '';
    };

    bindPort = mkOption {
      type = types.port;
      default = 7777;
      description = "UDP port for client QUIC and TCP port for peer Raft traffic (same number).";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open bindPort for TCP and UDP in the firewall.";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "--metrics-port" "9777" "--log-level" "debug" ];
      description = "Extra command-line arguments for aspen-node.";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = (cfg.cookie == null) != (cfg.cookieFile == null);
        message = "services.aspen-node: set exactly one of cookie or cookieFile.";
      }
    ];

    networking.firewall = mkIf cfg.openFirewall {
      allowedTCPPorts = [ cfg.bindPort ];
      allowedUDPPorts = [ cfg.bindPort ];
    };

    environment.systemPackages = [ cfg.package ];

    users.users.aspen = {
      isSystemUser = true;
      group = "aspen";
      home = cfg.dataDir;
    };
    users.groups.aspen = { };

    systemd.tmpfiles.rules = [ "d ${cfg.dataDir} 0700 aspen aspen - -" ];

    systemd.services.aspen-node = {
      description = "Aspen distributed key-value store node";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];

      environment = {
        ASPEN_NODE_ID = toString cfg.nodeId;
        ASPEN_DATA_DIR = cfg.dataDir;
        ASPEN_HOST = cfg.host;
        ASPEN_BIND_PORT = toString cfg.bindPort;
        ASPEN_LOG_FORMAT = "json";
      } // lib.optionalAttrs (cfg.cookie != null) { ASPEN_COOKIE = cfg.cookie; };

      # The cookie file is handed over as a systemd credential and read by the node itself
      # (--cookie-file), so the secret is never in argv or the environment.
      script = ''
        ${lib.optionalString (cfg.cookieFile != null) ''
          export ASPEN_COOKIE_FILE="$CREDENTIALS_DIRECTORY/cookie"
        ''}
        exec ${lib.getExe' cfg.package "aspen-node"} ${lib.escapeShellArgs cfg.extraArgs}
      '';

      serviceConfig = {
        User = "aspen";
        Group = "aspen";
        Restart = "on-failure";
        RestartSec = "2s";
        TimeoutStopSec = "30s";
        LoadCredential = lib.optional (cfg.cookieFile != null) "cookie:${cfg.cookieFile}";
        ReadWritePaths = [ cfg.dataDir ];
        UMask = "0077";
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" "~@privileged" ];
        LimitNOFILE = 65536;
      };
    };
  };
}
