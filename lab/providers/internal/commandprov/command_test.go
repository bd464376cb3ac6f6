package commandprov

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/asset"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	fw "kubeha.local/lab/providers/internal/framework"
)

type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) ctx() *fw.Ctx {
	return &fw.Ctx{Context: context.Background(), Name: "cmd", LogSink: func(_ diag.Severity, msg string, _ bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, msg)
	}}
}

func (l *logs) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// inputs builds Command/CopyToRemote inputs the way the npm SDK sends them: connection secret.
func inputs(conn map[string]any, kv map[string]any) resource.PropertyMap {
	m := resource.NewPropertyMapFromMap(kv)
	m["connection"] = resource.MakeSecret(resource.NewObjectProperty(resource.NewPropertyMapFromMap(conn)))
	return m
}

func check(t *testing.T, r *fw.Resource, c *fw.Ctx, in resource.PropertyMap) resource.PropertyMap {
	t.Helper()
	out, failures, err := r.CheckInputs(c, in)
	if err != nil || len(failures) > 0 {
		t.Fatalf("check: %v %v", err, failures)
	}
	return out
}

func TestCommandLifecycleOverSSH(t *testing.T) {
	s := startSSHD(t)
	l := &logs{}
	c := l.ctx()
	r := Command()
	out := filepath.Join(s.Dir, "out.txt")
	create := "cat > " + out + "; echo created; echo note >&2"
	update := "cat >> " + out + "; echo \"updated after [$PULUMI_COMMAND_STDOUT] env=$KUBEHA_X\""
	del := "rm -f " + out + "; echo deleted"
	in := check(t, r, c, inputs(s.connection(map[string]any{"hostKey": s.HostKeyLine}), map[string]any{
		"create": create, "update": update, "delete": del, "stdin": "first-secret\n",
		"environment": map[string]any{"KUBEHA_X": "42"}, "triggers": []any{"a"},
	}))
	if !fw.Bool(in, "addPreviousOutputInEnv", false) || !in["connection"].IsSecret() ||
		fw.Int(fw.Object(in, "connection"), "perDialTimeout", 0) != 5 {
		t.Fatalf("check defaults/secretness wrong: %v", in)
	}
	id, state, err := r.Create(c, in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, "cmd") || fw.Str(state, "stdout") != "created" || fw.Str(state, "stderr") != "note" {
		t.Fatalf("create: id=%q stdout=%q stderr=%q", id, fw.Str(state, "stdout"), fw.Str(state, "stderr"))
	}
	if b, _ := os.ReadFile(out); string(b) != "first-secret\n" {
		t.Fatalf("stdin not delivered: %q", b)
	}
	if !strings.Contains(l.all(), "created") || !strings.Contains(l.all(), "note") {
		t.Errorf("stdout/stderr lines must be logged by default: %q", l.all())
	}
	if strings.Contains(l.all(), "first-secret") {
		t.Errorf("stdin leaked into logs")
	}

	// Diff: a new update text is an in-place update, a new trigger replaces, a new connection updates.
	news := check(t, r, c, inputs(s.connection(map[string]any{"hostKey": s.HostKeyLine}), map[string]any{
		"create": create, "update": update + " ", "delete": del, "stdin": "second\n",
		"environment": map[string]any{"KUBEHA_X": "42"}, "triggers": []any{"a"},
	}))
	d := r.DiffState(c, state, news, nil)
	if len(d.Replaces) != 0 || len(d.Changed) != 2 {
		t.Errorf("update/stdin change must update in place: %+v", d)
	}
	trig := fw.Copy(news)
	trig["triggers"] = resource.NewArrayProperty([]resource.PropertyValue{resource.NewStringProperty("b")})
	if d := r.DiffState(c, state, trig, nil); len(d.Replaces) != 1 || d.Replaces[0] != "triggers" {
		t.Errorf("triggers must replace: %+v", d)
	}
	conn2 := check(t, r, c, inputs(s.connection(map[string]any{"user": "someone"}), map[string]any{
		"create": create, "update": update, "delete": del, "stdin": "first-secret\n",
		"environment": map[string]any{"KUBEHA_X": "42"}, "triggers": []any{"a"},
	}))
	if d := r.DiffState(c, state, conn2, nil); len(d.Replaces) != 0 || len(d.Changed) != 1 || d.Changed[0] != "connection" {
		t.Errorf("a connection change is an update in pulumi-command 1.2.1: %+v", d)
	}
	if d := r.DiffState(c, state, check(t, r, c, inputs(s.connection(map[string]any{"hostKey": s.HostKeyLine}), map[string]any{
		"create": create, "update": update, "delete": del, "stdin": "first-secret\n",
		"environment": map[string]any{"KUBEHA_X": "42"}, "triggers": []any{"a"},
	})), nil); len(d.Changed) != 0 {
		t.Errorf("same inputs must not diff: %+v", d)
	}

	// Update runs `update` (not create) with the previous stdout in the environment.
	prev, err := r.Update(c, id, state, news, true)
	if err != nil || !fw.IsUnknown(prev, "stdout") {
		t.Fatalf("preview update: %v %v", err, prev)
	}
	state2, err := r.Update(c, id, state, news, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := fw.Str(state2, "stdout"); got != "updated after [created] env=42" {
		t.Errorf("update stdout %q", got)
	}
	if b, _ := os.ReadFile(out); string(b) != "first-secret\nsecond\n" {
		t.Errorf("update must run `update` with the new stdin: %q", b)
	}

	// Delete runs `delete`.
	if err := r.Delete(c, id, state2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("delete did not run: %v", err)
	}
}

func TestCommandFailureAndLogging(t *testing.T) {
	s := startSSHD(t)
	r := Command()
	l := &logs{}
	c := l.ctx()
	in := check(t, r, c, inputs(s.connection(nil), map[string]any{
		"create": "echo to-stdout; echo to-stderr >&2; cat >/dev/null; exit 3", "stdin": "TOPSECRET-STDIN",
	}))
	_, _, err := r.Create(c, in)
	if err == nil {
		t.Fatal("a failing command must fail")
	}
	msg := err.Error()
	for _, want := range []string{"Process exited with status 3", "running \"echo to-stdout", "to-stdout", "to-stderr"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "TOPSECRET") || strings.Contains(l.all(), "TOPSECRET") {
		t.Errorf("stdin leaked: %q / %q", msg, l.all())
	}

	for _, tc := range []struct {
		logging       string
		stdout, stder bool
	}{{"none", false, false}, {"stdout", true, false}, {"stderr", false, true}, {"stdoutAndStderr", true, true}} {
		l := &logs{}
		c := l.ctx()
		in := check(t, r, c, inputs(s.connection(nil), map[string]any{"create": "echo OUT-LINE; echo ERR-LINE >&2", "logging": tc.logging}))
		_, state, err := r.Create(c, in)
		if err != nil {
			t.Fatal(err)
		}
		if fw.Str(state, "stdout") != "OUT-LINE" || fw.Str(state, "stderr") != "ERR-LINE" {
			t.Errorf("%s: outputs must be captured regardless of logging", tc.logging)
		}
		if strings.Contains(l.all(), "OUT-LINE") != tc.stdout || strings.Contains(l.all(), "ERR-LINE") != tc.stder {
			t.Errorf("logging=%s: logged %q", tc.logging, l.all())
		}
	}

	// An environment variable sshd does not accept is an error, as in pulumi-command 1.2.1.
	in = check(t, r, c, inputs(s.connection(nil), map[string]any{"create": "true", "environment": map[string]any{"NOT_ACCEPTED": "1"}}))
	if _, _, err := r.Create(c, in); err == nil || !strings.Contains(err.Error(), "could not set environment variable") {
		t.Errorf("rejected Setenv: %v", err)
	}
	// No create command: nothing runs, outputs are empty.
	in = check(t, r, c, inputs(map[string]any{"host": "127.0.0.1", "port": 1}, map[string]any{"delete": "true"}))
	if _, st, err := r.Create(c, in); err != nil || fw.Str(st, "stdout") != "" {
		t.Errorf("create without a command must be a no-op: %v", err)
	}
}

func TestHostKeyAndDialing(t *testing.T) {
	s := startSSHD(t)
	r := Command()
	l := &logs{}
	c := l.ctx()
	in := check(t, r, c, inputs(s.connection(map[string]any{"hostKey": s.OtherKeyLine, "dialErrorLimit": 10}), map[string]any{"create": "touch " + filepath.Join(s.Dir, "must-not-exist")}))
	start := time.Now()
	_, _, err := r.Create(c, in)
	if err == nil || !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("host-key mismatch must be refused: %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("a host-key mismatch must not be retried (took %v)", time.Since(start))
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "must-not-exist")); err == nil {
		t.Error("the command ran despite the host-key mismatch")
	}
	if _, failures, _ := r.CheckInputs(c, inputs(s.connection(map[string]any{"hostKey": "not a key"}), map[string]any{})); len(failures) == 0 {
		t.Error("a malformed hostKey must fail check")
	}
	if _, failures, _ := r.CheckInputs(c, inputs(s.connection(map[string]any{"proxy": map[string]any{"host": "x"}}), map[string]any{})); len(failures) == 0 {
		t.Error("connection.proxy is not supported and must fail check")
	}

	// Dialing a closed port gives up after dialErrorLimit failed retries.
	in = check(t, r, c, inputs(map[string]any{"host": "127.0.0.1", "port": freePort(t), "dialErrorLimit": 2, "privateKey": s.ClientKeyPEM}, map[string]any{"create": "true"}))
	l2 := &logs{}
	_, _, err = r.Create(l2.ctx(), in)
	if err == nil || !strings.Contains(err.Error(), "after 3 failed attempts") || !strings.Contains(l2.all(), "Dial 2/2 failed: retrying") {
		t.Errorf("dial retries: %v / %q", err, l2.all())
	}
}

func TestCopyToRemote(t *testing.T) {
	s := startSSHD(t)
	r := CopyToRemote()
	l := &logs{}
	c := l.ctx()
	local := filepath.Join(t.TempDir(), "etcd")
	if err := os.WriteFile(local, []byte("binary-v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := asset.FromPath(local)
	if err != nil {
		t.Fatal(err)
	}
	remote := filepath.Join(s.Dir, "var/lib/kubeha/uploads/etcd/etcd") // parents do not exist yet
	mk := func(src *asset.Asset, path string) resource.PropertyMap {
		m := inputs(s.connection(map[string]any{"hostKey": s.HostKeyLine}), map[string]any{"remotePath": path})
		m["source"] = resource.NewAssetProperty(src)
		return check(t, r, c, m)
	}
	in := mk(a, remote)
	if v, _ := fw.Get(in, "source"); v.AssetValue().Hash == "" {
		t.Fatal("check must compute the asset hash")
	}
	id, state, err := r.Create(c, in)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(remote)
	if b, _ := os.ReadFile(remote); err != nil || string(b) != "binary-v1" || st.Mode().Perm() != 0o644 || id == "" {
		t.Fatalf("copy: %v %q %v", err, b, st)
	}
	// Same content: no diff. New content: update (not replace) copies again.
	if d := r.DiffState(c, state, mk(a, remote), nil); len(d.Changed) != 0 {
		t.Errorf("unchanged source must not diff: %+v", d)
	}
	if err := os.WriteFile(local, []byte("binary-v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	a2, _ := asset.FromPath(local)
	news := mk(a2, remote)
	d := r.DiffState(c, state, news, nil)
	if len(d.Changed) != 1 || len(d.Replaces) != 0 {
		t.Errorf("a changed source is an in-place update: %+v", d)
	}
	if _, err := r.Update(c, id, state, news, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(remote); string(b) != "binary-v2" {
		t.Errorf("update did not copy: %q", b)
	}
	// An existing directory as remotePath receives the file under its own name; a text asset works too.
	dir := filepath.Join(s.Dir, "var/lib/kubeha/uploads/etcd")
	if _, _, err := r.Create(c, mk(a2, dir)); err != nil {
		t.Fatal(err)
	}
	txt, _ := asset.FromText("hello\n")
	if _, _, err := r.Create(c, mk(txt, filepath.Join(s.Dir, "t/x.txt"))); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.Dir, "t/x.txt")); string(b) != "hello\n" {
		t.Errorf("text asset: %q", b)
	}
	// Delete leaves the file (as the real provider).
	if r.Delete != nil {
		t.Error("CopyToRemote delete must be a no-op")
	}
}

// TestServerCommandPreview checks the gRPC path: preview never runs anything and keeps unknowns.
func TestServerCommandPreview(t *testing.T) {
	srv := fw.New("command", Version, nil, Resources()...)
	m := inputs(map[string]any{"host": "127.0.0.1", "port": 1}, map[string]any{"create": "touch /tmp/kubeha-preview-must-not-run"})
	m["stdin"] = resource.MakeComputed(resource.NewStringProperty(""))
	st, _ := plugin.MarshalProperties(m, plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true})
	res, err := srv.Create(context.Background(), &pulumirpc.CreateRequest{Type: "command:remote:Command", Properties: st, Preview: true})
	if err != nil {
		t.Fatal(err)
	}
	pm, _ := plugin.UnmarshalProperties(res.Properties, plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true})
	if !pm["stdin"].IsComputed() || !fw.IsUnknown(pm, "stdout") || !pm["connection"].IsSecret() {
		t.Errorf("preview outputs: %v", pm)
	}
	if _, err := os.Stat("/tmp/kubeha-preview-must-not-run"); err == nil {
		t.Error("preview ran the command")
	}
}
