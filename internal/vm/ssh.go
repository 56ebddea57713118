package vm

import (
	"context"
	"os/exec"
	"strconv"
)

// SSHCommand is the host's OpenSSH client logging in as root to a guest
// through a forwarded port (VM.HostPort(22)) with the private key
// identity, to run remote. It trusts any host key (each VM has a fresh
// one), never prompts, and gives up on a connection after 20 s.
func SSHCommand(ctx context.Context, hostPort int, identity, remote string) *exec.Cmd {
	return exec.CommandContext(ctx, "ssh",
		"-F", "/dev/null",
		"-i", identity, "-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=20",
		"-p", strconv.Itoa(hostPort), "root@127.0.0.1", remote)
}

// SSHDConfig is not-os's sshd configuration: keys from
// /etc/ssh/authorized_keys.d/%u (where notos-agent writes them), strict
// modes, no passwords, and no PAM (there is none in a test guest).
const SSHDConfig = `HostKey /etc/ssh/ssh_host_ed25519_key
AuthorizedKeysFile /etc/ssh/authorized_keys.d/%u
StrictModes yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
`
