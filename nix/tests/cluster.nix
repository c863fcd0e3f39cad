# NixOS VM test: three nodes on three VMs form a cluster through aspen-cli; the leader's VM crashes;
# the other two elect a leader and keep every acknowledged write.
# Run: nix-build nix -A tests.cluster
{ pkgs, module }:

let
  node = id: { config, ... }: {
    imports = [ module ];
    services.aspen-node = {
      enable = true;
      nodeId = id;
      cookie = "vm-test-cookie-cluster";
      host = config.networking.primaryIPAddress;
      bindPort = 7777;
      openFirewall = true;
      extraArgs = [
        "--heartbeat-interval-ms" "200"
        "--election-timeout-min-ms" "1000"
        "--election-timeout-max-ms" "2000"
      ];
    };
  };
in
pkgs.testers.runNixOSTest {
  name = "aspen-cluster";

  nodes = {
    n1 = node 1;
    n2 = node 2;
    n3 = node 3;
  };

  testScript = ''
    import json

    nodes = {1: n1, 2: n2, 3: n3}
    local = "/var/lib/aspen-node/cluster-ticket.txt"

    def endpoint_addr(m):
        eid = m.succeed(
            "journalctl -u aspen-node -o cat | grep -o 'endpoint_id=[0-9a-f]*' | tail -1 | cut -d= -f2"
        ).strip()
        ip = m.succeed("ip -4 -o addr show eth1 | awk '{print $4}' | cut -d/ -f1").strip()
        return json.dumps({"id": eid, "addrs": [{"Ip": f"{ip}:7777"}]})

    start_all()
    for m in nodes.values():
        m.wait_for_unit("aspen-node.service")
        m.wait_for_file(local)

    cli1 = f"aspen-cli --ticket {local} --timeout 15000"
    n1.succeed(f"{cli1} cluster init")
    for i in (2, 3):
        addr = endpoint_addr(nodes[i])
        n1.succeed(f"{cli1} cluster add-learner --node-id {i} --addr '{addr}'")
    n1.succeed(f"{cli1} cluster change-membership 1 2 3")
    ticket = n1.succeed(f"{cli1} cluster ticket").strip()
    cli = f"aspen-cli --ticket {ticket} --timeout 15000"

    for i in range(20):
        n1.succeed(f"{cli} kv set before-{i} v{i}")
    status = json.loads(n2.succeed(f"{cli} --json cluster status"))
    assert sorted(n["node_id"] for n in status["nodes"]) == [1, 2, 3], status
    leader = status["leader_id"]

    # Crash the leader's VM; the survivors elect a new leader and serve reads and writes.
    nodes[leader].crash()
    survivor = nodes[1 if leader != 1 else 2]
    survivor.wait_until_succeeds(f"{cli} kv set after-failover yes", timeout=90)
    for i in range(20):
        assert survivor.succeed(f"{cli} kv get before-{i}").strip() == f"v{i}"
    new_status = json.loads(survivor.succeed(f"{cli} --json cluster status"))
    assert new_status["leader_id"] not in (None, leader), new_status
  '';
}
