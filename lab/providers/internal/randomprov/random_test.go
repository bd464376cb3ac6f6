package randomprov

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	fw "kubeha.local/lab/providers/internal/framework"
)

func ctx() *fw.Ctx { return &fw.Ctx{Context: context.Background()} }

func create(t *testing.T, r *fw.Resource, in map[string]any) (string, resource.PropertyMap) {
	t.Helper()
	checked, failures, err := r.CheckInputs(ctx(), resource.NewPropertyMapFromMap(in))
	if err != nil || len(failures) > 0 {
		t.Fatalf("check %v: %v %v", in, err, failures)
	}
	id, outs, err := r.Create(ctx(), checked)
	if err != nil {
		t.Fatalf("create %v: %v", in, err)
	}
	return id, outs
}

func only(s, set string) bool {
	for _, c := range s {
		if !strings.ContainsRune(set, c) {
			return false
		}
	}
	return true
}

func count(s, set string) int {
	n := 0
	for _, c := range s {
		if strings.ContainsRune(set, c) {
			n++
		}
	}
	return n
}

func TestRandomStringClasses(t *testing.T) {
	// kubeha's bootstrap token id: [a-z0-9]{6}
	for i := 0; i < 50; i++ {
		id, outs := create(t, RandomString(), map[string]any{"length": 6, "upper": false, "special": false, "lower": true, "numeric": true})
		s := fw.Str(outs, "result")
		if len(s) != 6 || !only(s, lowerChars+numChars) || id != s {
			t.Fatalf("result %q id %q", s, id)
		}
		if !fw.Bool(outs, "number", false) || !fw.Bool(outs, "numeric", false) {
			t.Fatalf("numeric/number must both default to true")
		}
	}
	_, outs := create(t, RandomString(), map[string]any{"length": 40, "minUpper": 5, "minNumeric": 5, "minSpecial": 5, "overrideSpecial": "_%"})
	s := fw.Str(outs, "result")
	if len(s) != 40 || count(s, upperChars) < 5 || count(s, numChars) < 5 || count(s, "_%") < 5 || !only(s, upperChars+lowerChars+numChars+"_%") {
		t.Errorf("min counts / overrideSpecial not honoured: %q", s)
	}
	_, outs = create(t, RandomString(), map[string]any{"length": 8, "number": false, "special": false})
	if s := fw.Str(outs, "result"); !only(s, lowerChars+upperChars) || fw.Bool(outs, "numeric", true) {
		t.Errorf("deprecated number=false must disable digits: %q", s)
	}
}

func TestRandomChecks(t *testing.T) {
	for _, in := range []map[string]any{{}, {"length": 0}, {"length": 3, "minUpper": 2, "minLower": 2}, {"length": 5, "minSpecial": -1}} {
		if _, f, _ := RandomString().CheckInputs(ctx(), resource.NewPropertyMapFromMap(in)); len(f) == 0 {
			t.Errorf("%v: expected a check failure", in)
		}
	}
	r := RandomString()
	checked, _, _ := r.CheckInputs(ctx(), resource.NewPropertyMapFromMap(map[string]any{"length": 1, "lower": false, "upper": false, "numeric": false, "special": false}))
	if _, _, err := r.Create(ctx(), checked); err == nil {
		t.Error("an empty character set must fail")
	}
}

func TestRandomPasswordAndBytes(t *testing.T) {
	id, outs := create(t, RandomPassword(), map[string]any{"length": 16, "upper": false, "special": false})
	pw := fw.Str(outs, "result")
	if id != "none" || len(pw) != 16 || !only(pw, lowerChars+numChars) {
		t.Errorf("password %q id %q", pw, id)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(fw.Str(outs, "bcryptHash")), []byte(pw)); err != nil {
		t.Errorf("bcryptHash does not match: %v", err)
	}
	id, outs = create(t, RandomBytes(), map[string]any{"length": 32})
	b, err := base64.StdEncoding.DecodeString(fw.Str(outs, "base64"))
	h, err2 := hex.DecodeString(fw.Str(outs, "hex"))
	if id != "none" || err != nil || err2 != nil || len(b) != 32 || string(b) != string(h) {
		t.Errorf("bytes: %v %v %d", err, err2, len(b))
	}
}

func TestRandomDiffReplacesAndSecrets(t *testing.T) {
	r := RandomPassword()
	_, outs := create(t, r, map[string]any{"length": 16, "keepers": map[string]any{"k": "1"}})
	for _, tc := range []struct {
		in      map[string]any
		replace bool
	}{
		{map[string]any{"length": 16, "keepers": map[string]any{"k": "1"}}, false},
		{map[string]any{"length": 17, "keepers": map[string]any{"k": "1"}}, true},
		{map[string]any{"length": 16, "keepers": map[string]any{"k": "2"}}, true},
		{map[string]any{"length": 16, "keepers": map[string]any{"k": "1"}, "special": false}, true},
	} {
		checked, _, _ := r.CheckInputs(ctx(), resource.NewPropertyMapFromMap(tc.in))
		d := r.DiffState(ctx(), outs, checked, nil)
		if (len(d.Replaces) > 0) != tc.replace || (len(d.Changed) > 0) != tc.replace {
			t.Errorf("%v: %+v", tc.in, d)
		}
	}
	s := fw.New("random", Version, nil, Resources()...)
	for tok, secretKeys := range map[string][]string{
		"random:index/randomPassword:RandomPassword": {"result", "bcryptHash"},
		"random:index/randomBytes:RandomBytes":       {"base64", "hex"},
		"random:index/randomString:RandomString":     {},
	} {
		in, _ := plugin.MarshalProperties(resource.NewPropertyMapFromMap(map[string]any{"length": 8}), plugin.MarshalOptions{})
		chk, err := s.Check(context.Background(), &pulumirpc.CheckRequest{Type: tok, News: in})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Create(context.Background(), &pulumirpc.CreateRequest{Type: tok, Properties: chk.Inputs})
		if err != nil {
			t.Fatal(err)
		}
		pm, _ := plugin.UnmarshalProperties(res.Properties, plugin.MarshalOptions{KeepSecrets: true})
		for _, k := range secretKeys {
			if !pm[resource.PropertyKey(k)].IsSecret() {
				t.Errorf("%s.%s must be secret", tok, k)
			}
		}
		if tok == "random:index/randomString:RandomString" && pm["result"].IsSecret() {
			t.Errorf("RandomString.result must not be secret")
		}
	}
}
