// Package commandprov is the lab stand-in for the pulumi-command 1.2.1 plugin: remote.Command and
// remote.CopyToRemote over SSH (golang.org/x/crypto/ssh; copies with github.com/pkg/sftp).
package commandprov

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	fw "kubeha.local/lab/providers/internal/framework"
)

// Version is the plugin version this stand-in answers to.
const Version = "1.2.1"

// Resources returns the command resources.
func Resources() []*fw.Resource {
	return []*fw.Resource{Command(), CopyToRemote()}
}

var loggingValues = []string{"stdout", "stderr", "stdoutAndStderr", "none"}

// maxErrorOutput bounds the command output quoted in an error message (its tail is kept).
const maxErrorOutput = 16 << 10

// Command is command:remote:Command. As in pulumi-command 1.2.1 only `triggers` replaces; any other
// input change is an update, which runs `update` (or `create` when `update` is unset).
func Command() *fw.Resource {
	return &fw.Resource{
		Token: "command:remote:Command",
		Desc:  "A command to run on a remote host. The connection is established via ssh.",
		Props: []fw.Prop{
			{Name: "connection", Type: "object", In: true, Required: true, Secret: true},
			{Name: "environment", Type: "object", In: true},
			{Name: "triggers", Type: "array", Items: "any", In: true, Replace: true},
			{Name: "create", Type: "string", In: true},
			{Name: "update", Type: "string", In: true},
			{Name: "delete", Type: "string", In: true},
			{Name: "stdin", Type: "string", In: true},
			{Name: "logging", Type: "string", In: true},
			{Name: "addPreviousOutputInEnv", Type: "boolean", In: true, Default: true},
			{Name: "stdout", Type: "string"},
			{Name: "stderr", Type: "string"},
		},
		Validate: func(_ *fw.Ctx, news resource.PropertyMap) []*pulumirpc.CheckFailure {
			f := validateConnection(news)
			if fw.Known(news, "logging") {
				l := fw.Str(news, "logging")
				ok := false
				for _, v := range loggingValues {
					ok = ok || v == l
				}
				if !ok {
					f = append(f, &pulumirpc.CheckFailure{Property: "logging",
						Reason: fmt.Sprintf("logging must be one of %s, got %q", strings.Join(loggingValues, ", "), l)})
				}
			}
			return f
		},
		CheckHook: func(_ *fw.Ctx, news resource.PropertyMap) (resource.PropertyMap, error) {
			withConnectionDefaults(news)
			return news, nil
		},
		Create: func(c *fw.Ctx, news resource.PropertyMap) (string, resource.PropertyMap, error) {
			id, err := resource.NewUniqueHex(c.Name, 8, 0)
			if err != nil {
				return "", nil, err
			}
			outs := fw.Copy(news)
			outs["stdout"] = resource.NewStringProperty("")
			outs["stderr"] = resource.NewStringProperty("")
			if cmd := fw.StrPtr(news, "create"); cmd != nil {
				stdout, stderr, err := Run(c, outs, *cmd)
				if err != nil {
					return "", nil, err
				}
				outs["stdout"] = resource.NewStringProperty(stdout)
				outs["stderr"] = resource.NewStringProperty(stderr)
			}
			return id, outs, nil
		},
		Update: func(c *fw.Ctx, _ string, olds, news resource.PropertyMap, preview bool) (resource.PropertyMap, error) {
			outs := fw.Copy(news)
			cmd := fw.StrPtr(news, "update")
			if cmd == nil {
				cmd = fw.StrPtr(news, "create")
			}
			if preview {
				unknown := resource.MakeComputed(resource.NewStringProperty(""))
				outs["stdout"], outs["stderr"] = olds["stdout"], olds["stderr"]
				if cmd != nil {
					outs["stdout"], outs["stderr"] = unknown, unknown
				}
				return outs, nil
			}
			// The previous run's output is what PULUMI_COMMAND_STDOUT/STDERR carry.
			outs["stdout"] = resource.NewStringProperty(fw.Str(olds, "stdout"))
			outs["stderr"] = resource.NewStringProperty(fw.Str(olds, "stderr"))
			if cmd != nil {
				stdout, stderr, err := Run(c, outs, *cmd)
				if err != nil {
					return nil, err
				}
				outs["stdout"] = resource.NewStringProperty(stdout)
				outs["stderr"] = resource.NewStringProperty(stderr)
			}
			return outs, nil
		},
		Delete: func(c *fw.Ctx, _ string, olds resource.PropertyMap) error {
			cmd := fw.StrPtr(olds, "delete")
			if cmd == nil {
				return nil
			}
			_, _, err := Run(c, olds, *cmd)
			return err
		},
	}
}

// lineLogger forwards complete lines to the engine as ephemeral info status messages.
type lineLogger struct {
	mu  sync.Mutex
	pw  *io.PipeWriter
	out chan struct{}
}

func newLineLogger(c *fw.Ctx) *lineLogger {
	pr, pw := io.Pipe()
	l := &lineLogger{pw: pw, out: make(chan struct{})}
	go func() {
		defer close(l.out)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.LogStatus(diag.Info, sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return l
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pw.Write(p)
}

func (l *lineLogger) close() {
	_ = l.pw.Close()
	<-l.out
}

// lockedBuffer is a bytes.Buffer shared by the stdout and stderr copiers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Run executes cmd in one SSH session with the state's connection, environment, stdin and logging.
// It returns stdout and stderr without their final newline. The error of a failed command names
// the exit status, the command line and the tail of its combined output; stdin never appears in
// an error or a log message.
func Run(c *fw.Ctx, state resource.PropertyMap, cmd string) (string, string, error) {
	conn, err := ConnectionFrom(state)
	if err != nil {
		return "", "", err
	}
	client, err := conn.Dial(c)
	if err != nil {
		return "", "", err
	}
	defer client.Close()
	session, err := client.NewSession()
	if err != nil {
		return "", "", err
	}
	defer session.Close()

	env := fw.StringMap(state, "environment")
	for _, k := range sortedKeys(env) {
		if err := session.Setenv(k, env[k]); err != nil {
			c.Log(diag.Error, setenvMessage(k))
			return "", "", fmt.Errorf("could not set environment variable %q: %w", k, err)
		}
	}
	if fw.Bool(state, "addPreviousOutputInEnv", true) {
		for _, kv := range [][2]string{{"PULUMI_COMMAND_STDOUT", fw.Str(state, "stdout")}, {"PULUMI_COMMAND_STDERR", fw.Str(state, "stderr")}} {
			if kv[1] == "" {
				continue
			}
			if err := session.Setenv(kv[0], kv[1]); err != nil {
				c.Log(diag.Warning, setenvMessage(kv[0]))
			}
		}
	}
	if stdin := fw.Str(state, "stdin"); stdin != "" {
		session.Stdin = strings.NewReader(stdin)
	}

	logging := fw.Str(state, "logging")
	logStdout := logging == "" || logging == "stdout" || logging == "stdoutAndStderr"
	logStderr := logging == "" || logging == "stderr" || logging == "stdoutAndStderr"
	var stdout, stderr bytes.Buffer
	var combined lockedBuffer
	logger := newLineLogger(c)
	outW := []io.Writer{&stdout, &combined}
	if logStdout {
		outW = append(outW, logger)
	}
	errW := []io.Writer{&stderr, &combined}
	if logStderr {
		errW = append(errW, logger)
	}
	session.Stdout = io.MultiWriter(outW...)
	session.Stderr = io.MultiWriter(errW...)

	done := make(chan struct{})
	go func() {
		select {
		case <-c.Done():
			_ = session.Signal(ssh.SIGTERM)
			_ = session.Close()
		case <-done:
		}
	}()
	err = session.Run(cmd)
	close(done)
	logger.close()
	if err != nil {
		out := combined.String()
		if len(out) > maxErrorOutput {
			out = "…" + out[len(out)-maxErrorOutput:]
		}
		var exit *ssh.ExitError
		if errors.As(err, &exit) {
			return "", "", fmt.Errorf("%w: running %q:\n%s", exit, cmd, out)
		}
		return "", "", fmt.Errorf("%w: running %q:\n%s", err, cmd, out)
	}
	return strings.TrimSuffix(stdout.String(), "\n"), strings.TrimSuffix(stderr.String(), "\n"), nil
}

func setenvMessage(key string) string {
	return fmt.Sprintf("Unable to set '%s'. This only works if your SSH server is configured to accept these "+
		"variables via AcceptEnv. Alternatively, if a Bash-like shell runs the command on the remote host, you "+
		"could prefix the command itself with the variables in the form 'VAR=value command'", key)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
