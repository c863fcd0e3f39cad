# NixOS VM test: one node under the module; init, write, read, restart, read again.
# Run: nix-build nix -A tests.single-node
{ pkgs, module }:

pkgs.testers.runNixOSTest {
  name = "aspen-single-node";

  nodes.machine = {
    imports = [ module ];
    environment.systemPackages = [ pkgs.curl ];
    services.aspen-node = {
      enable = true;
      nodeId = 1;
      cookieFile = pkgs.writeText "aspen-cookie" "vm-test-cookie-single";
      extraArgs = [ "--metrics-port" "9777" ];
    };
  };

  testScript = ''
    ticket = "/var/lib/aspen-node/cluster-ticket.txt"
    cli = f"aspen-cli --ticket {ticket} --timeout 10000"

    machine.wait_for_unit("aspen-node.service")
    machine.wait_for_file(ticket)
    machine.succeed(f"{cli} cluster init")
    machine.succeed(f"{cli} kv set hello world")
    assert machine.succeed(f"{cli} kv get hello").strip() == "world"
    machine.succeed(f"{cli} kv batch-write a=1 b=2 c=3")
    machine.succeed("curl -sf http://127.0.0.1:9777/metrics | grep aspen_raft_is_leader")

    # A restart resumes data and membership; `cluster init` is refused from then on.
    machine.succeed("systemctl restart aspen-node.service")
    machine.wait_for_unit("aspen-node.service")
    machine.wait_until_succeeds(f"{cli} kv get hello | grep -x world", timeout=60)
    machine.fail(f"{cli} cluster init")
    assert machine.succeed(f"{cli} kv get c").strip() == "3"
  '';
}
