package commandprov

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/retry"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	fw "kubeha.local/lab/providers/internal/framework"
)

// connectionFields are the supported fields of the `connection` input (proxy is not supported).
var connectionFields = map[string]bool{
	"host": true, "port": true, "user": true, "password": true, "privateKey": true, "privateKeyPassword": true,
	"agentSocketPath": true, "dialErrorLimit": true, "perDialTimeout": true, "hostKey": true,
}

// connectionDefaults are those of the real provider (the npm SDK also applies them client-side).
var connectionDefaults = map[string]resource.PropertyValue{
	"port":           resource.NewNumberProperty(22),
	"user":           resource.NewStringProperty("root"),
	"dialErrorLimit": resource.NewNumberProperty(10),
	"perDialTimeout": resource.NewNumberProperty(15),
}

// withConnectionDefaults fills defaults into news["connection"], keeping its secretness.
func withConnectionDefaults(news resource.PropertyMap) {
	v, ok := news["connection"]
	if !ok {
		return
	}
	secret := false
	inner := v
	for inner.IsSecret() {
		secret = true
		inner = inner.SecretValue().Element
	}
	if !inner.IsObject() {
		return
	}
	obj := fw.Copy(inner.ObjectValue())
	for k, d := range connectionDefaults {
		if cur, ok := obj[resource.PropertyKey(k)]; !ok || cur.IsNull() {
			obj[resource.PropertyKey(k)] = d
		}
	}
	out := resource.NewObjectProperty(obj)
	if secret {
		out = resource.MakeSecret(out)
	}
	news["connection"] = out
}

func validateConnection(news resource.PropertyMap) []*pulumirpc.CheckFailure {
	var f []*pulumirpc.CheckFailure
	v, ok := fw.Get(news, "connection")
	if !ok || v.IsComputed() || (v.IsOutput() && !v.OutputValue().Known) {
		return nil
	}
	if !v.IsObject() {
		return []*pulumirpc.CheckFailure{{Property: "connection", Reason: "connection must be an object"}}
	}
	obj := v.ObjectValue()
	for k, e := range obj {
		if !connectionFields[string(k)] && !e.IsNull() {
			f = append(f, &pulumirpc.CheckFailure{Property: "connection." + string(k),
				Reason: fmt.Sprintf("connection.%s is not supported by this lab stand-in (see lab/providers/README.md)", k)})
		}
	}
	if _, ok := fw.Get(obj, "host"); !ok {
		f = append(f, &pulumirpc.CheckFailure{Property: "connection.host", Reason: "Missing required property 'host'"})
	}
	if fw.Known(obj, "hostKey") {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(fw.Str(obj, "hostKey"))); err != nil {
			f = append(f, &pulumirpc.CheckFailure{Property: "connection.hostKey",
				Reason: fmt.Sprintf("hostKey must be a public key in authorized_keys format (\"ssh-ed25519 AAAA…\"): %v", err)})
		}
	}
	return f
}

// Connection is the decoded `connection` input.
type Connection struct {
	Host               string
	Port               int
	User               string
	Password           *string
	PrivateKey         *string
	PrivateKeyPassword *string
	AgentSocketPath    *string
	DialErrorLimit     int
	PerDialTimeout     int
	HostKey            *string
}

// ConnectionFrom decodes the connection of a (checked) property map.
func ConnectionFrom(m resource.PropertyMap) (*Connection, error) {
	obj := fw.Object(m, "connection")
	if obj == nil {
		return nil, errors.New("connection is missing")
	}
	c := &Connection{
		Host:               fw.Str(obj, "host"),
		Port:               fw.Int(obj, "port", 22),
		User:               fw.Str(obj, "user"),
		Password:           fw.StrPtr(obj, "password"),
		PrivateKey:         fw.StrPtr(obj, "privateKey"),
		PrivateKeyPassword: fw.StrPtr(obj, "privateKeyPassword"),
		AgentSocketPath:    fw.StrPtr(obj, "agentSocketPath"),
		DialErrorLimit:     fw.Int(obj, "dialErrorLimit", 10),
		PerDialTimeout:     fw.Int(obj, "perDialTimeout", 15),
		HostKey:            fw.StrPtr(obj, "hostKey"),
	}
	if c.User == "" {
		c.User = "root"
	}
	if c.Host == "" {
		return nil, errors.New("connection.host is missing")
	}
	return c, nil
}

// ErrHostKeyMismatch is returned (without retrying) when the server's key is not connection.hostKey.
var ErrHostKeyMismatch = errors.New("ssh: host key mismatch")

func (c *Connection) clientConfig() (*ssh.ClientConfig, func(), error) {
	cfg := &ssh.ClientConfig{
		User:            c.User,
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), //nolint:gosec // as the real provider when hostKey is unset
		Timeout:         time.Duration(c.PerDialTimeout) * time.Second,
	}
	cleanup := func() {}
	if c.HostKey != nil && *c.HostKey != "" {
		want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*c.HostKey))
		if err != nil {
			return nil, cleanup, fmt.Errorf("connection.hostKey: %w", err)
		}
		cfg.HostKeyAlgorithms = hostKeyAlgorithms(want.Type())
		cfg.HostKeyCallback = func(hostname string, _ net.Addr, got ssh.PublicKey) error {
			if bytes.Equal(got.Marshal(), want.Marshal()) {
				return nil
			}
			return fmt.Errorf("%w for %s: server presented %s %s, expected %s %s", ErrHostKeyMismatch, hostname,
				got.Type(), ssh.FingerprintSHA256(got), want.Type(), ssh.FingerprintSHA256(want))
		}
	}
	if c.PrivateKey != nil {
		var signer ssh.Signer
		var err error
		if c.PrivateKeyPassword != nil {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(*c.PrivateKey), []byte(*c.PrivateKeyPassword))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(*c.PrivateKey))
		}
		if err != nil {
			// The message of x/crypto's parser never contains key material.
			return nil, cleanup, fmt.Errorf("connection.privateKey: %w", err)
		}
		cfg.Auth = append(cfg.Auth, ssh.PublicKeys(signer))
	}
	if c.Password != nil {
		pw := *c.Password
		cfg.Auth = append(cfg.Auth, ssh.Password(pw), ssh.KeyboardInteractive(
			func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	sock := ""
	if c.AgentSocketPath != nil {
		sock = *c.AgentSocketPath
	} else if env := os.Getenv("SSH_AUTH_SOCK"); env != "" {
		sock = env
	}
	if sock != "" {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, cleanup, fmt.Errorf("ssh agent %s: %w", sock, err)
		}
		cleanup = func() { conn.Close() }
		cfg.Auth = append(cfg.Auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
	}
	return cfg, cleanup, nil
}

// hostKeyAlgorithms restricts negotiation to the expected key's algorithms, so that a server with
// several host keys presents the one we can check.
func hostKeyAlgorithms(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// Dial connects, retrying up to DialErrorLimit failed dials (-1: unlimited) with the SDK's
// default backoff (100ms growing 1.5x up to 5s), as the real provider does. A host-key mismatch
// is not retried.
func (c *Connection) Dial(ctx *fw.Ctx) (*ssh.Client, error) {
	cfg, cleanup, err := c.clientConfig()
	if err != nil {
		return nil, err
	}
	endpoint := net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	var client *ssh.Client
	var lastErr error
	limit := "inf"
	if c.DialErrorLimit >= 0 {
		limit = strconv.Itoa(c.DialErrorLimit)
	}
	ok, _, err := retry.Until(ctx, retry.Acceptor{
		Accept: func(try int, _ time.Duration) (bool, any, error) {
			client, lastErr = ssh.Dial("tcp", endpoint, cfg)
			if lastErr == nil {
				return true, nil, nil
			}
			if errors.Is(lastErr, ErrHostKeyMismatch) {
				return true, nil, fmt.Errorf("dial %s: %w", endpoint, lastErr)
			}
			dials := try + 1
			if c.DialErrorLimit > -1 && dials > c.DialErrorLimit {
				return true, nil, fmt.Errorf("dial %s after %d failed attempts: %w", endpoint, dials, lastErr)
			}
			ctx.LogStatus(diag.Info, fmt.Sprintf("Dial %d/%s failed: retrying", dials, limit))
			return false, nil, nil
		},
	})
	if err == nil && !ok {
		err = ctx.Err()
		if err == nil {
			err = lastErr
		}
	}
	if err != nil {
		cleanup()
		return nil, err
	}
	// The agent connection stays open as long as the client may need it.
	go func() { _ = client.Wait(); cleanup() }()
	return client, nil
}
