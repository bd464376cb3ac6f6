package tlsprov

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	fw "kubeha.local/lab/providers/internal/framework"
)

func ctx() *fw.Ctx { return &fw.Ctx{Context: context.Background(), Name: "t"} }

func props(kv map[string]any) resource.PropertyMap {
	return resource.NewPropertyMapFromMap(kv)
}

// create runs Check then Create, failing the test on check failures.
func create(t *testing.T, r *fw.Resource, in resource.PropertyMap) (string, resource.PropertyMap) {
	t.Helper()
	checked, failures, err := r.CheckInputs(ctx(), in)
	if err != nil || len(failures) > 0 {
		t.Fatalf("%s check: %v %v", r.Token, err, failures)
	}
	id, outs, err := r.Create(ctx(), checked)
	if err != nil {
		t.Fatalf("%s create: %v", r.Token, err)
	}
	return id, outs
}

func pemBlock(t *testing.T, s string) *pem.Block {
	t.Helper()
	b, rest := pem.Decode([]byte(s))
	if b == nil || strings.TrimSpace(string(rest)) != "" {
		t.Fatalf("not a single PEM block: %q", s)
	}
	return b
}

func TestPrivateKeyFormats(t *testing.T) {
	cases := []struct {
		in       map[string]any
		pemType  string
		check    func(any) bool
		hasSSH   bool
		keyAlgID string
	}{
		{map[string]any{"algorithm": "RSA"}, "RSA PRIVATE KEY", func(k any) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 2048 }, true, "RSA"},
		{map[string]any{"algorithm": "RSA", "rsaBits": 3072}, "RSA PRIVATE KEY", func(k any) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 3072 }, true, "RSA"},
		{map[string]any{"algorithm": "ECDSA", "ecdsaCurve": "P256"}, "EC PRIVATE KEY", func(k any) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve == elliptic.P256() }, true, "ECDSA"},
		{map[string]any{"algorithm": "ECDSA"}, "EC PRIVATE KEY", func(k any) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve == elliptic.P224() }, false, "ECDSA"},
		{map[string]any{"algorithm": "ED25519"}, "PRIVATE KEY", func(k any) bool { _, ok := k.(ed25519.PrivateKey); return ok }, true, "ED25519"},
	}
	for _, tc := range cases {
		id, outs := create(t, PrivateKey(), props(tc.in))
		if len(id) != 40 {
			t.Errorf("%v: id %q is not a sha1 hex", tc.in, id)
		}
		b := pemBlock(t, fw.Str(outs, "privateKeyPem"))
		if b.Type != tc.pemType {
			t.Errorf("%v: privateKeyPem type %q, want %q", tc.in, b.Type, tc.pemType)
		}
		key, alg, err := ParsePrivateKeyPEM(fw.Str(outs, "privateKeyPem"))
		if err != nil || alg != tc.keyAlgID || !tc.check(key) {
			t.Errorf("%v: parsed %T %s %v", tc.in, key, alg, err)
		}
		p8 := pemBlock(t, fw.Str(outs, "privateKeyPemPkcs8"))
		if _, err := x509.ParsePKCS8PrivateKey(p8.Bytes); err != nil || p8.Type != "PRIVATE KEY" {
			t.Errorf("%v: pkcs8: %v", tc.in, err)
		}
		pub := pemBlock(t, fw.Str(outs, "publicKeyPem"))
		if _, err := x509.ParsePKIXPublicKey(pub.Bytes); err != nil || pub.Type != "PUBLIC KEY" {
			t.Errorf("%v: public key: %v", tc.in, err)
		}
		ssh := fw.Str(outs, "publicKeyOpenssh")
		if tc.hasSSH != (ssh != "") || tc.hasSSH != strings.HasPrefix(fw.Str(outs, "publicKeyFingerprintSha256"), "SHA256:") ||
			tc.hasSSH != strings.Contains(fw.Str(outs, "privateKeyOpenssh"), "OPENSSH PRIVATE KEY") {
			t.Errorf("%v: openssh outputs present=%v: %q", tc.in, tc.hasSSH, ssh)
		}
		if tc.hasSSH && strings.Count(fw.Str(outs, "publicKeyFingerprintMd5"), ":") != 15 {
			t.Errorf("%v: md5 fingerprint %q", tc.in, fw.Str(outs, "publicKeyFingerprintMd5"))
		}
	}
}

func TestPrivateKeyCheck(t *testing.T) {
	checked, failures, _ := PrivateKey().CheckInputs(ctx(), props(map[string]any{"algorithm": "RSA"}))
	if len(failures) != 0 || fw.Int(checked, "rsaBits", 0) != 2048 || fw.Str(checked, "ecdsaCurve") != "P224" {
		t.Fatalf("defaults not applied: %v %v", checked, failures)
	}
	for _, in := range []map[string]any{{"algorithm": "DSA"}, {"algorithm": "ECDSA", "ecdsaCurve": "P999"}, {}, {"algorithm": "RSA", "bogus": 1}} {
		if _, failures, _ := PrivateKey().CheckInputs(ctx(), props(in)); len(failures) == 0 {
			t.Errorf("%v: expected a check failure", in)
		}
	}
	// Unknown inputs are not validated.
	in := resource.PropertyMap{"algorithm": resource.MakeComputed(resource.NewStringProperty(""))}
	if _, failures, _ := PrivateKey().CheckInputs(ctx(), in); len(failures) != 0 {
		t.Errorf("unknown algorithm must pass check: %v", failures)
	}
}

type pki struct {
	caKey, caCert, leafKey, csr, leaf resource.PropertyMap
	caID, leafID                      string
}

func issuePKI(t *testing.T, alg map[string]any) pki {
	t.Helper()
	var p pki
	_, p.caKey = create(t, PrivateKey(), props(alg))
	p.caID, p.caCert = create(t, SelfSignedCert(), props(map[string]any{
		"privateKeyPem":       fw.Str(p.caKey, "privateKeyPem"),
		"subject":             map[string]any{"commonName": "kubernetes-ca", "organization": "kubeha"},
		"isCaCertificate":     true,
		"allowedUses":         []any{"cert_signing", "crl_signing", "digital_signature", "key_encipherment"},
		"validityPeriodHours": 87600,
		"earlyRenewalHours":   720,
	}))
	_, p.leafKey = create(t, PrivateKey(), props(alg))
	_, p.csr = create(t, CertRequest(), props(map[string]any{
		"privateKeyPem": fw.Str(p.leafKey, "privateKeyPem"),
		"subject":       map[string]any{"commonName": "kube-apiserver", "organization": "system:masters"},
		"dnsNames":      []any{"kubernetes", "kubernetes.default.svc"},
		"ipAddresses":   []any{"10.96.0.1", "127.0.0.1", "fd00::1"},
		"uris":          []any{"spiffe://cluster.local/apiserver"},
	}))
	p.leafID, p.leaf = create(t, LocallySignedCert(), props(map[string]any{
		"certRequestPem":      fw.Str(p.csr, "certRequestPem"),
		"caCertPem":           fw.Str(p.caCert, "certPem"),
		"caPrivateKeyPem":     fw.Str(p.caKey, "privateKeyPem"),
		"allowedUses":         []any{"digital_signature", "key_encipherment", "server_auth", "client_auth"},
		"validityPeriodHours": 8760,
		"earlyRenewalHours":   720,
	}))
	return p
}

func parseCert(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	b := pemBlock(t, s)
	if b.Type != "CERTIFICATE" {
		t.Fatalf("PEM type %q", b.Type)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChainVerifiesWithSANsAndUsages(t *testing.T) {
	for _, alg := range []map[string]any{{"algorithm": "RSA"}, {"algorithm": "ECDSA", "ecdsaCurve": "P256"}, {"algorithm": "ED25519"}} {
		p := issuePKI(t, alg)
		ca := parseCert(t, fw.Str(p.caCert, "certPem"))
		leaf := parseCert(t, fw.Str(p.leaf, "certPem"))
		if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage&x509.KeyUsageCertSign == 0 || ca.KeyUsage&x509.KeyUsageCRLSign == 0 {
			t.Errorf("%v: CA flags wrong: isCA=%v ku=%b", alg, ca.IsCA, ca.KeyUsage)
		}
		if len(ca.SubjectKeyId) == 0 || string(leaf.AuthorityKeyId) != string(ca.SubjectKeyId) {
			t.Errorf("%v: SKID/AKID: ca skid %x, leaf akid %x", alg, ca.SubjectKeyId, leaf.AuthorityKeyId)
		}
		if ca.SerialNumber.BitLen() > 128 || ca.SerialNumber.String() != p.caID || leaf.SerialNumber.String() != p.leafID {
			t.Errorf("%v: serial/id mismatch", alg)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			for _, name := range []string{"kubernetes.default.svc", "10.96.0.1", "fd00::1"} {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
					t.Errorf("%v: verify %s for %v: %v", alg, name, usage, err)
				}
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "evil.example"}); err == nil {
			t.Errorf("%v: leaf must not verify for a name it does not hold", alg)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err == nil {
			t.Errorf("%v: leaf must not verify for code signing", alg)
		}
		if leaf.Subject.CommonName != "kube-apiserver" || len(leaf.Subject.Organization) != 1 || leaf.Subject.Organization[0] != "system:masters" {
			t.Errorf("%v: subject %v", alg, leaf.Subject)
		}
		wantIPs := []net.IP{net.ParseIP("10.96.0.1"), net.ParseIP("127.0.0.1"), net.ParseIP("fd00::1")}
		if len(leaf.IPAddresses) != 3 || len(leaf.DNSNames) != 2 || len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/apiserver" {
			t.Errorf("%v: SANs dns=%v ip=%v uri=%v", alg, leaf.DNSNames, leaf.IPAddresses, leaf.URIs)
		}
		for i, ip := range wantIPs {
			if i < len(leaf.IPAddresses) && !leaf.IPAddresses[i].Equal(ip) {
				t.Errorf("%v: ip %d = %v", alg, i, leaf.IPAddresses[i])
			}
		}
		if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment || len(leaf.ExtKeyUsage) != 2 {
			t.Errorf("%v: leaf usages ku=%b eku=%v isCA=%v", alg, leaf.KeyUsage, leaf.ExtKeyUsage, leaf.IsCA)
		}
		if len(leaf.SubjectKeyId) != 0 {
			t.Errorf("%v: setSubjectKeyId unset must leave the leaf without SKID (as upstream)", alg)
		}
		start, err1 := time.Parse(time.RFC3339, fw.Str(p.leaf, "validityStartTime"))
		end, err2 := time.Parse(time.RFC3339, fw.Str(p.leaf, "validityEndTime"))
		if err1 != nil || err2 != nil || end.Sub(start) != 8760*time.Hour || !leaf.NotAfter.Equal(end.Truncate(time.Second)) {
			t.Errorf("%v: validity %v..%v (%v %v) cert %v", alg, start, end, err1, err2, leaf.NotAfter)
		}
		if fw.Str(p.leaf, "caKeyAlgorithm") != alg["algorithm"] || fw.Str(p.caCert, "keyAlgorithm") != alg["algorithm"] ||
			fw.Str(p.csr, "keyAlgorithm") != alg["algorithm"] || fw.Bool(p.leaf, "readyForRenewal", true) {
			t.Errorf("%v: key algorithm / readyForRenewal outputs wrong", alg)
		}
	}
}

func TestSelfSignedKeyIDOptions(t *testing.T) {
	_, key := create(t, PrivateKey(), props(map[string]any{"algorithm": "ECDSA", "ecdsaCurve": "P256"}))
	_, out := create(t, SelfSignedCert(), props(map[string]any{
		"privateKeyPem": fw.Str(key, "privateKeyPem"), "subject": map[string]any{"commonName": "x"},
		"allowedUses": []any{"server_auth"}, "validityPeriodHours": 1, "setSubjectKeyId": true, "setAuthorityKeyId": true,
	}))
	c := parseCert(t, fw.Str(out, "certPem"))
	if c.IsCA || len(c.SubjectKeyId) == 0 || string(c.AuthorityKeyId) != string(c.SubjectKeyId) {
		t.Errorf("skid %x akid %x isCA %v", c.SubjectKeyId, c.AuthorityKeyId, c.IsCA)
	}
	// A CA needs a subject.
	r := SelfSignedCert()
	checked, _, _ := r.CheckInputs(ctx(), props(map[string]any{"privateKeyPem": fw.Str(key, "privateKeyPem"),
		"allowedUses": []any{"cert_signing"}, "validityPeriodHours": 1, "isCaCertificate": true}))
	if _, _, err := r.Create(ctx(), checked); err == nil {
		t.Error("a CA certificate without subject must fail")
	}
}

func TestLocallySignedRejectsTamperedCSRAndWrongCAKey(t *testing.T) {
	p := issuePKI(t, map[string]any{"algorithm": "ECDSA", "ecdsaCurve": "P256"})
	b := pemBlock(t, fw.Str(p.csr, "certRequestPem"))
	der := append([]byte(nil), b.Bytes...)
	der[len(der)-5] ^= 0xff // corrupt the signature
	bad := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	r := LocallySignedCert()
	in := props(map[string]any{"certRequestPem": bad, "caCertPem": fw.Str(p.caCert, "certPem"),
		"caPrivateKeyPem": fw.Str(p.caKey, "privateKeyPem"), "allowedUses": []any{"server_auth"}, "validityPeriodHours": 1})
	checked, _, _ := r.CheckInputs(ctx(), in)
	if _, _, err := r.Create(ctx(), checked); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("tampered CSR: %v", err)
	}
	in["certRequestPem"] = resource.NewStringProperty(fw.Str(p.csr, "certRequestPem"))
	in["caPrivateKeyPem"] = resource.NewStringProperty(fw.Str(p.leafKey, "privateKeyPem"))
	checked, _, _ = r.CheckInputs(ctx(), in)
	if _, _, err := r.Create(ctx(), checked); err == nil {
		t.Error("a CA key that does not match the CA certificate must fail")
	}
}

func diffOf(r *fw.Resource, olds resource.PropertyMap, news map[string]any) fw.DiffResult {
	checked, _, _ := r.CheckInputs(ctx(), props(news))
	return r.DiffState(ctx(), olds, checked, nil)
}

func inputsOf(r *fw.Resource, outs resource.PropertyMap) map[string]any {
	in := map[string]any{}
	for _, p := range r.Props {
		if v, ok := outs[resource.PropertyKey(p.Name)]; ok && p.In {
			in[p.Name] = fw.Unwrap(v).Mappable()
		}
	}
	return in
}

func TestDiffSemantics(t *testing.T) {
	p := issuePKI(t, map[string]any{"algorithm": "RSA"})
	r := LocallySignedCert()
	same := inputsOf(r, p.leaf)
	if d := diffOf(r, p.leaf, same); len(d.Changed) != 0 {
		t.Errorf("no change expected, got %v", d.Changed)
	}
	ws := inputsOf(r, p.leaf)
	ws["caCertPem"] = "\n" + strings.ReplaceAll(ws["caCertPem"].(string), "\n", "\r\n") + "  \n"
	if d := diffOf(r, p.leaf, ws); len(d.Changed) != 0 {
		t.Errorf("PEM whitespace must not diff, got %v", d.Changed)
	}
	er := inputsOf(r, p.leaf)
	er["earlyRenewalHours"] = 48
	if d := diffOf(r, p.leaf, er); len(d.Changed) != 1 || len(d.Replaces) != 0 || d.Detailed["earlyRenewalHours"].Kind != pulumirpc.PropertyDiff_UPDATE {
		t.Errorf("earlyRenewalHours must update in place: %+v", d)
	}
	outs, _ := r.Update(ctx(), p.leafID, p.leaf, props(er), false)
	if fw.Int(outs, "earlyRenewalHours", 0) != 48 || fw.Str(outs, "certPem") != fw.Str(p.leaf, "certPem") {
		t.Error("in-place update must keep the certificate and store the new earlyRenewalHours")
	}
	au := inputsOf(r, p.leaf)
	au["allowedUses"] = []any{"server_auth"}
	if d := diffOf(r, p.leaf, au); len(d.Replaces) != 1 || d.Replaces[0] != "allowedUses" {
		t.Errorf("allowedUses must replace: %+v", d)
	}
	unk := props(inputsOf(r, p.leaf))
	unk["caCertPem"] = resource.MakeComputed(resource.NewStringProperty(""))
	if d := r.DiffState(ctx(), p.leaf, unk, nil); len(d.Replaces) != 1 || d.Replaces[0] != "caCertPem" {
		t.Errorf("an unknown CA cert must replace: %+v", d)
	}
	cr := CertRequest()
	sub := inputsOf(cr, p.csr)
	sub["subject"] = map[string]any{"commonName": "kube-apiserver", "organization": "other"}
	if d := diffOf(cr, p.csr, sub); len(d.Replaces) != 1 || d.Replaces[0] != "subject" {
		t.Errorf("subject change must replace: %+v", d)
	}
	pk := PrivateKey()
	if d := diffOf(pk, props(map[string]any{"algorithm": "RSA", "rsaBits": 2048, "ecdsaCurve": "P224"}),
		map[string]any{"algorithm": "RSA"}); len(d.Changed) != 0 {
		t.Errorf("defaults must not diff: %+v", d)
	}
	if d := diffOf(pk, props(map[string]any{"algorithm": "RSA", "rsaBits": 2048, "ecdsaCurve": "P224"}),
		map[string]any{"algorithm": "RSA", "rsaBits": 4096}); len(d.Replaces) != 1 {
		t.Errorf("rsaBits must replace: %+v", d)
	}
}

func TestEarlyRenewal(t *testing.T) {
	p := issuePKI(t, map[string]any{"algorithm": "ECDSA", "ecdsaCurve": "P256"})
	r := LocallySignedCert()
	defer func() { Now = time.Now }()
	end, _ := time.Parse(time.RFC3339, fw.Str(p.leaf, "validityEndTime"))
	in := inputsOf(r, p.leaf) // earlyRenewalHours = 720
	for _, tc := range []struct {
		now  time.Time
		want bool
	}{
		{end.Add(-721 * time.Hour), false},
		{end.Add(-720 * time.Hour), true},
		{end.Add(time.Hour), true},
	} {
		Now = func() time.Time { return tc.now }
		d := diffOf(r, p.leaf, in)
		got := len(d.Replaces) == 1 && d.Replaces[0] == "readyForRenewal"
		if got != tc.want {
			t.Errorf("now=end%+v: replace=%v want %v (%+v)", tc.now.Sub(end), got, tc.want, d)
		}
		state, _, err := r.Read(ctx(), p.leafID, p.leaf, props(in))
		if err != nil || fw.Bool(state, "readyForRenewal", false) != tc.want {
			t.Errorf("now=end%+v: read readyForRenewal=%v want %v (%v)", tc.now.Sub(end), fw.Bool(state, "readyForRenewal", false), tc.want, err)
		}
	}
	// A larger earlyRenewalHours in the new inputs brings renewal forward (plan-time value, as upstream).
	Now = func() time.Time { return end.Add(-1000 * time.Hour) }
	in["earlyRenewalHours"] = 2000
	if d := diffOf(r, p.leaf, in); len(d.Replaces) != 1 {
		t.Errorf("new earlyRenewalHours must trigger renewal: %+v", d)
	}
}

// TestServerMarksSecrets goes through the gRPC methods: outputs declared secret come back as secrets,
// and previews return unknown outputs without generating anything.
func TestServerMarksSecrets(t *testing.T) {
	s := fw.New("tls", Version, nil, Resources()...)
	in, _ := plugin.MarshalProperties(props(map[string]any{"algorithm": "ED25519"}), plugin.MarshalOptions{KeepSecrets: true})
	urn := "urn:pulumi:dev::p::tls:index/privateKey:PrivateKey::k"
	chk, err := s.Check(context.Background(), &pulumirpc.CheckRequest{Urn: urn, News: in, Type: "tls:index/privateKey:PrivateKey"})
	if err != nil || len(chk.Failures) > 0 {
		t.Fatal(err, chk.Failures)
	}
	prev, err := s.Create(context.Background(), &pulumirpc.CreateRequest{Urn: urn, Properties: chk.Inputs, Preview: true})
	if err != nil {
		t.Fatal(err)
	}
	pm, _ := plugin.UnmarshalProperties(prev.Properties, plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true})
	if prev.Id != "" || !fw.IsUnknown(pm, "publicKeyPem") || !pm["privateKeyPem"].IsSecret() {
		t.Errorf("preview: id=%q %v", prev.Id, pm)
	}
	res, err := s.Create(context.Background(), &pulumirpc.CreateRequest{Urn: urn, Properties: chk.Inputs})
	if err != nil {
		t.Fatal(err)
	}
	pm, _ = plugin.UnmarshalProperties(res.Properties, plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true})
	for _, k := range []string{"privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"} {
		if !pm[resource.PropertyKey(k)].IsSecret() {
			t.Errorf("%s must be secret", k)
		}
	}
	if pm["publicKeyPem"].IsSecret() || res.Id == "" {
		t.Errorf("publicKeyPem must not be secret; id=%q", res.Id)
	}
	info, _ := s.GetPluginInfo(context.Background(), nil)
	if info.Version != "5.6.1" {
		t.Errorf("version %q", info.Version)
	}
	sch, err := s.GetSchema(context.Background(), &pulumirpc.GetSchemaRequest{})
	if err != nil || !strings.Contains(sch.Schema, `"tls:index/locallySignedCert:LocallySignedCert"`) {
		t.Errorf("schema: %v", err)
	}
}
