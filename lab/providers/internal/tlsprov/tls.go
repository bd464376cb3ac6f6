// Package tlsprov is the lab stand-in for the pulumi-tls 5.6.1 plugin (a bridge of
// terraform-provider-tls): PrivateKey, CertRequest, SelfSignedCert and LocallySignedCert.
package tlsprov

import (
	"crypto"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // resource ID as the terraform provider computes it
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	fw "kubeha.local/lab/providers/internal/framework"
)

// Version is the plugin version this stand-in answers to.
const Version = "5.6.1"

// Now is the clock (tests move it to exercise early renewal).
var Now = time.Now

var keyUsages = map[string]x509.KeyUsage{
	"digital_signature":  x509.KeyUsageDigitalSignature,
	"content_commitment": x509.KeyUsageContentCommitment,
	"key_encipherment":   x509.KeyUsageKeyEncipherment,
	"data_encipherment":  x509.KeyUsageDataEncipherment,
	"key_agreement":      x509.KeyUsageKeyAgreement,
	"cert_signing":       x509.KeyUsageCertSign,
	"crl_signing":        x509.KeyUsageCRLSign,
	"encipher_only":      x509.KeyUsageEncipherOnly,
	"decipher_only":      x509.KeyUsageDecipherOnly,
}

var extKeyUsages = map[string]x509.ExtKeyUsage{
	"any_extended":                      x509.ExtKeyUsageAny,
	"server_auth":                       x509.ExtKeyUsageServerAuth,
	"client_auth":                       x509.ExtKeyUsageClientAuth,
	"code_signing":                      x509.ExtKeyUsageCodeSigning,
	"email_protection":                  x509.ExtKeyUsageEmailProtection,
	"ipsec_end_system":                  x509.ExtKeyUsageIPSECEndSystem,
	"ipsec_tunnel":                      x509.ExtKeyUsageIPSECTunnel,
	"ipsec_user":                        x509.ExtKeyUsageIPSECUser,
	"timestamping":                      x509.ExtKeyUsageTimeStamping,
	"ocsp_signing":                      x509.ExtKeyUsageOCSPSigning,
	"microsoft_server_gated_crypto":     x509.ExtKeyUsageMicrosoftServerGatedCrypto,
	"netscape_server_gated_crypto":      x509.ExtKeyUsageNetscapeServerGatedCrypto,
	"microsoft_commercial_code_signing": x509.ExtKeyUsageMicrosoftCommercialCodeSigning,
	"microsoft_kernel_code_signing":     x509.ExtKeyUsageMicrosoftKernelCodeSigning,
}

// Resources returns the tls resources.
func Resources() []*fw.Resource {
	return []*fw.Resource{PrivateKey(), CertRequest(), SelfSignedCert(), LocallySignedCert()}
}

func failure(prop, format string, args ...any) *pulumirpc.CheckFailure {
	return &pulumirpc.CheckFailure{Property: prop, Reason: fmt.Sprintf(format, args...)}
}

// ---- PrivateKey --------------------------------------------------------------------------------

// PrivateKey is tls:index/privateKey:PrivateKey.
func PrivateKey() *fw.Resource {
	return &fw.Resource{
		Token: "tls:index/privateKey:PrivateKey",
		Desc:  "Creates a PEM (and OpenSSH) formatted private key.",
		Props: []fw.Prop{
			{Name: "algorithm", Type: "string", In: true, Required: true, Replace: true},
			{Name: "rsaBits", Type: "integer", In: true, Replace: true, Default: 2048},
			{Name: "ecdsaCurve", Type: "string", In: true, Replace: true, Default: "P224"},
			{Name: "privateKeyPem", Type: "string", Secret: true},
			{Name: "privateKeyPemPkcs8", Type: "string", Secret: true},
			{Name: "privateKeyOpenssh", Type: "string", Secret: true},
			{Name: "publicKeyPem", Type: "string"},
			{Name: "publicKeyOpenssh", Type: "string"},
			{Name: "publicKeyFingerprintMd5", Type: "string"},
			{Name: "publicKeyFingerprintSha256", Type: "string"},
		},
		Validate: func(_ *fw.Ctx, news resource.PropertyMap) []*pulumirpc.CheckFailure {
			var f []*pulumirpc.CheckFailure
			if fw.Known(news, "algorithm") {
				if a := fw.Str(news, "algorithm"); !contains(algorithms, a) {
					f = append(f, failure("algorithm", "algorithm must be one of RSA, ECDSA, ED25519, got %q", a))
				}
			}
			if fw.Known(news, "ecdsaCurve") {
				if c := fw.Str(news, "ecdsaCurve"); curves[c] == nil {
					f = append(f, failure("ecdsaCurve", "ecdsaCurve must be one of P224, P256, P384, P521, got %q", c))
				}
			}
			return f
		},
		Create: func(_ *fw.Ctx, news resource.PropertyMap) (string, resource.PropertyMap, error) {
			m, err := GenerateKey(fw.Str(news, "algorithm"), fw.Int(news, "rsaBits", 2048), fw.Str(news, "ecdsaCurve"))
			if err != nil {
				return "", nil, err
			}
			outs := fw.Copy(news)
			set := func(k, v string) { outs[resource.PropertyKey(k)] = resource.NewStringProperty(v) }
			set("privateKeyPem", m.PrivateKeyPem)
			set("privateKeyPemPkcs8", m.PrivateKeyPemPkcs8)
			set("privateKeyOpenssh", m.PrivateKeyOpenssh)
			set("publicKeyPem", m.PublicKeyPem)
			set("publicKeyOpenssh", m.PublicKeyOpenssh)
			set("publicKeyFingerprintMd5", m.PublicKeyFingerprintMd5)
			set("publicKeyFingerprintSha256", m.PublicKeyFingerprintSha256)
			return m.ID, outs, nil
		},
	}
}

// ---- subject and SANs --------------------------------------------------------------------------

var subjectFields = []string{"commonName", "organization", "organizationalUnit", "streetAddresses", "locality",
	"province", "country", "postalCode", "serialNumber", "emailAddress"}

// Subject converts the `subject` input to a pkix.Name the way terraform-provider-tls does.
func Subject(obj resource.PropertyMap) pkix.Name {
	var n pkix.Name
	if obj == nil {
		return n
	}
	str := func(k string) (string, bool) {
		v, ok := fw.Get(obj, k)
		if ok && v.IsString() {
			return v.StringValue(), true
		}
		return "", false
	}
	if s, ok := str("commonName"); ok {
		n.CommonName = s
	}
	if s, ok := str("organization"); ok {
		n.Organization = []string{s}
	}
	if s, ok := str("organizationalUnit"); ok {
		n.OrganizationalUnit = []string{s}
	}
	n.StreetAddress = fw.Strings(obj, "streetAddresses")
	if s, ok := str("locality"); ok {
		n.Locality = []string{s}
	}
	if s, ok := str("province"); ok {
		n.Province = []string{s}
	}
	if s, ok := str("country"); ok {
		n.Country = []string{s}
	}
	if s, ok := str("postalCode"); ok {
		n.PostalCode = []string{s}
	}
	if s, ok := str("serialNumber"); ok {
		n.SerialNumber = s
	}
	if s, ok := str("emailAddress"); ok {
		n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{
			Type:  asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1},
			Value: asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte(s)},
		})
	}
	return n
}

type sans struct {
	dns  []string
	ips  []net.IP
	uris []*url.URL
}

func parseSANs(news resource.PropertyMap) (sans, error) {
	s := sans{dns: fw.Strings(news, "dnsNames")}
	for _, ip := range fw.Strings(news, "ipAddresses") {
		p := net.ParseIP(ip)
		if p == nil {
			return s, fmt.Errorf("invalid IP address: failed to parse %q", ip)
		}
		s.ips = append(s.ips, p)
	}
	for _, u := range fw.Strings(news, "uris") {
		p, err := url.Parse(u)
		if err != nil {
			return s, fmt.Errorf("invalid URI: failed to parse %q: %v", u, err)
		}
		s.uris = append(s.uris, p)
	}
	return s, nil
}

func validateSubjectAndSANs(news resource.PropertyMap) []*pulumirpc.CheckFailure {
	var f []*pulumirpc.CheckFailure
	if obj := fw.Object(news, "subject"); obj != nil {
		for k := range obj {
			if !contains(subjectFields, string(k)) {
				f = append(f, failure("subject."+string(k), "unknown subject field %q", k))
			}
		}
	}
	if fw.Known(news, "ipAddresses") {
		for _, ip := range fw.Strings(news, "ipAddresses") {
			if net.ParseIP(ip) == nil {
				f = append(f, failure("ipAddresses", "invalid IP address %q", ip))
			}
		}
	}
	if fw.Known(news, "uris") {
		for _, u := range fw.Strings(news, "uris") {
			if _, err := url.Parse(u); err != nil {
				f = append(f, failure("uris", "invalid URI %q: %v", u, err))
			}
		}
	}
	return f
}

func sanProps() []fw.Prop {
	return []fw.Prop{
		{Name: "subject", Type: "object", In: true, Replace: true},
		{Name: "dnsNames", Type: "array", In: true, Replace: true},
		{Name: "ipAddresses", Type: "array", In: true, Replace: true},
		{Name: "uris", Type: "array", In: true, Replace: true},
	}
}

// ---- CertRequest -------------------------------------------------------------------------------

// CertRequest is tls:index/certRequest:CertRequest.
func CertRequest() *fw.Resource {
	props := append([]fw.Prop{
		{Name: "privateKeyPem", Type: "string", In: true, Required: true, Replace: true, PEM: true, Secret: true},
	}, sanProps()...)
	props = append(props,
		fw.Prop{Name: "certRequestPem", Type: "string"},
		fw.Prop{Name: "keyAlgorithm", Type: "string"},
	)
	return &fw.Resource{
		Token: "tls:index/certRequest:CertRequest",
		Desc:  "Creates a Certificate Signing Request (CSR) in PEM format.",
		Props: props,
		Validate: func(_ *fw.Ctx, news resource.PropertyMap) []*pulumirpc.CheckFailure {
			return validateSubjectAndSANs(news)
		},
		Create: func(_ *fw.Ctx, news resource.PropertyMap) (string, resource.PropertyMap, error) {
			key, alg, err := ParsePrivateKeyPEM(fw.Str(news, "privateKeyPem"))
			if err != nil {
				return "", nil, fmt.Errorf("failed to parse private key PEM: %w", err)
			}
			s, err := parseSANs(news)
			if err != nil {
				return "", nil, err
			}
			tmpl := &x509.CertificateRequest{Subject: Subject(fw.Object(news, "subject")), DNSNames: s.dns, IPAddresses: s.ips, URIs: s.uris}
			der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
			if err != nil {
				return "", nil, fmt.Errorf("error creating certificate request: %w", err)
			}
			outs := fw.Copy(news)
			outs["certRequestPem"] = resource.NewStringProperty(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})))
			outs["keyAlgorithm"] = resource.NewStringProperty(alg)
			sum := sha1.Sum(der) //nolint:gosec
			return hex.EncodeToString(sum[:]), outs, nil
		},
	}
}

// ---- certificates ------------------------------------------------------------------------------

func certProps() []fw.Prop {
	return []fw.Prop{
		{Name: "validityPeriodHours", Type: "integer", In: true, Required: true, Replace: true},
		{Name: "allowedUses", Type: "array", In: true, Required: true, Replace: true},
		{Name: "earlyRenewalHours", Type: "integer", In: true, Default: 0}, // in-place, as upstream
		{Name: "isCaCertificate", Type: "boolean", In: true, Replace: true, Default: false},
		{Name: "setSubjectKeyId", Type: "boolean", In: true, Replace: true, Default: false},
		{Name: "maxPathLength", Type: "integer", In: true, Replace: true},
		{Name: "certPem", Type: "string"},
		{Name: "validityStartTime", Type: "string"},
		{Name: "validityEndTime", Type: "string"},
		{Name: "readyForRenewal", Type: "boolean"},
	}
}

func validateCert(news resource.PropertyMap) []*pulumirpc.CheckFailure {
	var f []*pulumirpc.CheckFailure
	if fw.Known(news, "allowedUses") {
		for _, u := range fw.Strings(news, "allowedUses") {
			if _, ok := keyUsages[u]; !ok {
				if _, ok := extKeyUsages[u]; !ok {
					f = append(f, failure("allowedUses", "unsupported usage %q; accepted values: %s", u, strings.Join(supportedUsages(), ", ")))
				}
			}
		}
	}
	for _, k := range []string{"validityPeriodHours", "earlyRenewalHours"} {
		if fw.Known(news, k) && fw.Int(news, k, 0) < 0 {
			f = append(f, failure(k, "%s must be at least 0", k))
		}
	}
	return f
}

func supportedUsages() []string {
	var all []string
	for k := range keyUsages {
		all = append(all, k)
	}
	for k := range extKeyUsages {
		all = append(all, k)
	}
	sort.Strings(all)
	return all
}

type issued struct {
	id, certPem, start, end string
}

// issue fills validity, serial, usages, CA flags and key identifiers as terraform-provider-tls's
// createCertificate does, then signs. parent == tmpl for a self-signed certificate.
func issue(news resource.PropertyMap, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer, allowAKID bool) (*issued, error) {
	tmpl.NotBefore = Now()
	tmpl.NotAfter = tmpl.NotBefore.Add(time.Duration(fw.Int(news, "validityPeriodHours", 0)) * time.Hour)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("failed to generate serial number: %w", err)
	}
	tmpl.SerialNumber = serial
	for _, u := range fw.Strings(news, "allowedUses") {
		if ku, ok := keyUsages[u]; ok {
			tmpl.KeyUsage |= ku
		}
		if eku, ok := extKeyUsages[u]; ok {
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, eku)
		}
	}
	if fw.Bool(news, "isCaCertificate", false) {
		if tmpl.Subject.String() == "" && len(tmpl.Subject.ExtraNames) == 0 {
			return nil, errors.New("invalid certificate subject: must contain at least one Distinguished Name when creating a Certificate Authority (CA)")
		}
		tmpl.IsCA = true
		if tmpl.SubjectKeyId, err = subjectKeyID(pub); err != nil {
			return nil, err
		}
	}
	if fw.Known(news, "maxPathLength") {
		if n := fw.Int(news, "maxPathLength", -1); n >= 0 {
			tmpl.MaxPathLen = n
		}
	}
	if fw.Bool(news, "setSubjectKeyId", false) {
		if tmpl.SubjectKeyId, err = subjectKeyID(pub); err != nil {
			return nil, err
		}
	}
	if allowAKID && fw.Bool(news, "setAuthorityKeyId", false) {
		if len(parent.SubjectKeyId) == 0 {
			return nil, errors.New("invalid Certificate Authority: could not determine Authority Key Identifier (set isCaCertificate or setSubjectKeyId)")
		}
		tmpl.AuthorityKeyId = parent.SubjectKeyId
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("failed to create certificate: %w", err)
	}
	start, _ := tmpl.NotBefore.MarshalText()
	end, _ := tmpl.NotAfter.MarshalText()
	return &issued{
		id:      serial.String(),
		certPem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		start:   string(start),
		end:     string(end),
	}, nil
}

func certOutputs(news resource.PropertyMap, c *issued) resource.PropertyMap {
	outs := fw.Copy(news)
	outs["certPem"] = resource.NewStringProperty(c.certPem)
	outs["validityStartTime"] = resource.NewStringProperty(c.start)
	outs["validityEndTime"] = resource.NewStringProperty(c.end)
	outs["readyForRenewal"] = resource.NewBoolProperty(false)
	return outs
}

// ReadyForRenewal reports whether now >= validityEndTime - earlyRenewalHours.
func ReadyForRenewal(validityEnd string, earlyRenewalHours int) (bool, error) {
	end, err := time.Parse(time.RFC3339, validityEnd)
	if err != nil {
		return false, fmt.Errorf("failed to parse validityEndTime %q: %w", validityEnd, err)
	}
	return !end.Add(-time.Duration(earlyRenewalHours) * time.Hour).After(Now()), nil
}

// renewalDiff requests a replacement (keyed on readyForRenewal) once the certificate is due, as the
// terraform provider's ModifyPlan does.
func renewalDiff(c *fw.Ctx, olds, news resource.PropertyMap) []string {
	end := fw.Str(olds, "validityEndTime")
	if end == "" {
		return nil
	}
	early := fw.Int(olds, "earlyRenewalHours", 0)
	if fw.Known(news, "earlyRenewalHours") {
		early = fw.Int(news, "earlyRenewalHours", 0)
	}
	due, err := ReadyForRenewal(end, early)
	if err != nil || !due {
		return nil
	}
	c.Log(diag.Info, "certificate is ready for early renewal: it will be replaced")
	return []string{"readyForRenewal"}
}

// updateEarlyRenewal is the only in-place change (earlyRenewalHours): state follows the new inputs.
func updateEarlyRenewal(_ *fw.Ctx, _ string, olds, news resource.PropertyMap, _ bool) (resource.PropertyMap, error) {
	outs := fw.Copy(olds)
	for k, v := range news {
		outs[k] = v
	}
	outs["readyForRenewal"] = resource.NewBoolProperty(false)
	return outs, nil
}

func readRenewal(_ *fw.Ctx, _ string, state, inputs resource.PropertyMap) (resource.PropertyMap, resource.PropertyMap, error) {
	state = fw.Copy(state)
	if end := fw.Str(state, "validityEndTime"); end != "" {
		due, err := ReadyForRenewal(end, fw.Int(state, "earlyRenewalHours", 0))
		if err != nil {
			return nil, nil, err
		}
		if due {
			state["readyForRenewal"] = resource.NewBoolProperty(true)
		}
	}
	return state, inputs, nil
}

// SelfSignedCert is tls:index/selfSignedCert:SelfSignedCert.
func SelfSignedCert() *fw.Resource {
	props := append([]fw.Prop{
		{Name: "privateKeyPem", Type: "string", In: true, Required: true, Replace: true, PEM: true, Secret: true},
		{Name: "setAuthorityKeyId", Type: "boolean", In: true, Replace: true, Default: false},
	}, sanProps()...)
	props = append(props, certProps()...)
	props = append(props, fw.Prop{Name: "keyAlgorithm", Type: "string"})
	return &fw.Resource{
		Token: "tls:index/selfSignedCert:SelfSignedCert",
		Desc:  "Creates a self-signed TLS certificate in PEM format.",
		Props: props,
		Validate: func(_ *fw.Ctx, news resource.PropertyMap) []*pulumirpc.CheckFailure {
			return append(validateSubjectAndSANs(news), validateCert(news)...)
		},
		DiffHook: renewalDiff,
		Update:   updateEarlyRenewal,
		Read:     readRenewal,
		Create: func(_ *fw.Ctx, news resource.PropertyMap) (string, resource.PropertyMap, error) {
			key, alg, err := ParsePrivateKeyPEM(fw.Str(news, "privateKeyPem"))
			if err != nil {
				return "", nil, fmt.Errorf("failed to parse private key PEM: %w", err)
			}
			s, err := parseSANs(news)
			if err != nil {
				return "", nil, err
			}
			tmpl := &x509.Certificate{BasicConstraintsValid: true, Subject: Subject(fw.Object(news, "subject")),
				DNSNames: s.dns, IPAddresses: s.ips, URIs: s.uris}
			c, err := issue(news, tmpl, tmpl, key.Public(), key, true)
			if err != nil {
				return "", nil, err
			}
			outs := certOutputs(news, c)
			outs["keyAlgorithm"] = resource.NewStringProperty(alg)
			return c.id, outs, nil
		},
	}
}

// LocallySignedCert is tls:index/locallySignedCert:LocallySignedCert.
func LocallySignedCert() *fw.Resource {
	props := []fw.Prop{
		{Name: "certRequestPem", Type: "string", In: true, Required: true, Replace: true, PEM: true},
		{Name: "caCertPem", Type: "string", In: true, Required: true, Replace: true, PEM: true},
		{Name: "caPrivateKeyPem", Type: "string", In: true, Required: true, Replace: true, PEM: true, Secret: true},
	}
	props = append(props, certProps()...)
	props = append(props, fw.Prop{Name: "caKeyAlgorithm", Type: "string"})
	return &fw.Resource{
		Token: "tls:index/locallySignedCert:LocallySignedCert",
		Desc:  "Creates a TLS certificate from a CSR, signed by a local CA.",
		Props: props,
		Validate: func(_ *fw.Ctx, news resource.PropertyMap) []*pulumirpc.CheckFailure {
			return validateCert(news)
		},
		DiffHook: renewalDiff,
		Update:   updateEarlyRenewal,
		Read:     readRenewal,
		Create: func(c *fw.Ctx, news resource.PropertyMap) (string, resource.PropertyMap, error) {
			csr, err := parsePEM(fw.Str(news, "certRequestPem"), "CERTIFICATE REQUEST")
			if err != nil {
				return "", nil, fmt.Errorf("failed to parse certificate request PEM: %w", err)
			}
			req, err := x509.ParseCertificateRequest(csr)
			if err != nil {
				return "", nil, fmt.Errorf("failed to parse certificate request: %w", err)
			}
			if err := req.CheckSignature(); err != nil {
				return "", nil, fmt.Errorf("certificate request signature is invalid: %w", err)
			}
			caKey, alg, err := ParsePrivateKeyPEM(fw.Str(news, "caPrivateKeyPem"))
			if err != nil {
				return "", nil, fmt.Errorf("failed to parse CA private key PEM: %w", err)
			}
			caDER, err := parsePEM(fw.Str(news, "caCertPem"), "CERTIFICATE")
			if err != nil {
				return "", nil, fmt.Errorf("failed to parse CA certificate PEM: %w", err)
			}
			ca, err := x509.ParseCertificate(caDER)
			if err != nil {
				return "", nil, fmt.Errorf("failed to parse CA certificate: %w", err)
			}
			if !ca.IsCA {
				c.Log(diag.Warning, "Potentially Invalid Certificate Authority: the certificate provided as authority does not appear to be a CA; the resulting certificate might fail validation")
			}
			tmpl := &x509.Certificate{BasicConstraintsValid: true, Subject: req.Subject,
				DNSNames: req.DNSNames, IPAddresses: req.IPAddresses, URIs: req.URIs}
			is, err := issue(news, tmpl, ca, req.PublicKey, caKey, false)
			if err != nil {
				return "", nil, err
			}
			outs := certOutputs(news, is)
			outs["caKeyAlgorithm"] = resource.NewStringProperty(alg)
			return is.id, outs, nil
		},
	}
}

func parsePEM(s, typ string) ([]byte, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, fmt.Errorf("failed to decode PEM of expected type %q", typ)
	}
	if block.Type != typ {
		return nil, fmt.Errorf("invalid PEM type - expected %q, got %q", typ, block.Type)
	}
	return block.Bytes, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
