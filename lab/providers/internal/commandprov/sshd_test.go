package commandprov

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// testSSHD is a real OpenSSH server on 127.0.0.1 (a free high port) with a temporary host key
// (ed25519 and ecdsa) and one authorized client key. It is stopped when the test ends.
type testSSHD struct {
	Port         int
	User         string
	Dir          string
	ClientKeyPEM string // OpenSSH private key of the authorized client
	HostKeyLine  string // "ssh-ed25519 AAAA…" of the server
	OtherKeyLine string // a public key the server does not have
}

func sshdPath(t testing.TB) string {
	for _, p := range []string{os.Getenv("SSHD"), "/usr/sbin/sshd"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if os.Getenv("KUBEHA_REQUIRE_SSHD") != "" {
		t.Fatal("sshd not found (apt-get install openssh-server) and KUBEHA_REQUIRE_SSHD is set")
	}
	t.Skip("sshd not found: apt-get install openssh-server (or set SSHD=/path/to/sshd)")
	return ""
}

func writeKey(t testing.TB, path string, key any) ssh.PublicKey {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return signer.PublicKey()
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startSSHD(t testing.TB) *testSSHD {
	t.Helper()
	bin := sshdPath(t)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, hostEd, _ := ed25519.GenerateKey(rand.Reader)
	hostEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, client, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	hostPub := writeKey(t, filepath.Join(dir, "host_ed25519"), hostEd)
	writeKey(t, filepath.Join(dir, "host_ecdsa"), hostEC)
	clientPub := writeKey(t, filepath.Join(dir, "client"), client)
	otherPub := writeKey(t, filepath.Join(dir, "other"), other)
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		_ = os.MkdirAll("/run/sshd", 0o755) // privilege separation directory
	}
	port := freePort(t)
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %[2]s/host_ecdsa
HostKey %[2]s/host_ed25519
AuthorizedKeysFile %[2]s/authorized_keys
PidFile %[2]s/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AcceptEnv KUBEHA_* PULUMI_COMMAND_STDOUT PULUMI_COMMAND_STDERR
Subsystem sftp internal-sftp
LogLevel ERROR
`, port, dir)
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on %d: %s", port, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	key, _ := os.ReadFile(filepath.Join(dir, "client"))
	return &testSSHD{
		Port: port, User: u.Username, Dir: dir, ClientKeyPEM: string(key),
		HostKeyLine:  strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostPub))),
		OtherKeyLine: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherPub))),
	}
}

// connection returns the `connection` input for this server.
func (s *testSSHD) connection(extra map[string]any) map[string]any {
	c := map[string]any{"host": "127.0.0.1", "port": s.Port, "user": s.User, "privateKey": s.ClientKeyPEM, "dialErrorLimit": 3, "perDialTimeout": 5}
	for k, v := range extra {
		c[k] = v
	}
	return c
}
