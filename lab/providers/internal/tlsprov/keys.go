package tlsprov

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // key identifiers and resource IDs, as the terraform tls provider computes them
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// Algorithms and curves accepted by tls.PrivateKey (terraform-provider-tls names).
var (
	algorithms = []string{"RSA", "ECDSA", "ED25519"}
	curves     = map[string]elliptic.Curve{"P224": elliptic.P224(), "P256": elliptic.P256(), "P384": elliptic.P384(), "P521": elliptic.P521()}
)

// KeyMaterial is everything tls.PrivateKey outputs.
type KeyMaterial struct {
	ID                         string
	PrivateKeyPem              string
	PrivateKeyPemPkcs8         string
	PrivateKeyOpenssh          string
	PublicKeyPem               string
	PublicKeyOpenssh           string
	PublicKeyFingerprintMd5    string
	PublicKeyFingerprintSha256 string
}

// GenerateKey creates a key like tls_private_key: RSA (PKCS#1 PEM), ECDSA (SEC1 PEM) or ED25519 (PKCS#8 PEM).
func GenerateKey(algorithm string, rsaBits int, curve string) (*KeyMaterial, error) {
	var key crypto.Signer
	var err error
	switch algorithm {
	case "RSA":
		key, err = rsa.GenerateKey(rand.Reader, rsaBits)
	case "ECDSA":
		c, ok := curves[curve]
		if !ok {
			return nil, fmt.Errorf("invalid ECDSA curve %q; supported values are: P224, P256, P384, P521", curve)
		}
		key, err = ecdsa.GenerateKey(c, rand.Reader)
	case "ED25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("key algorithm %q is not supported", algorithm)
	}
	if err != nil {
		return nil, fmt.Errorf("unable to generate key: %w", err)
	}
	return EncodeKey(key)
}

// EncodeKey renders every output of tls.PrivateKey for an existing key.
func EncodeKey(key crypto.Signer) (*KeyMaterial, error) {
	var block *pem.Block
	switch k := key.(type) {
	case *rsa.PrivateKey:
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	case ed25519.PrivateKey:
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	default:
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(pubDER) //nolint:gosec
	m := &KeyMaterial{
		ID:                 hex.EncodeToString(sum[:]),
		PrivateKeyPem:      string(pem.EncodeToMemory(block)),
		PrivateKeyPemPkcs8: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})),
		PublicKeyPem:       string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
	}
	// x/crypto/ssh does not handle P-224: those outputs stay empty, as in the real provider.
	if ec, ok := key.(*ecdsa.PrivateKey); ok && ec.Curve == elliptic.P224() {
		return m, nil
	}
	sshBlock, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		return nil, fmt.Errorf("unable to marshal private key into OpenSSH format: %w", err)
	}
	m.PrivateKeyOpenssh = string(pem.EncodeToMemory(sshBlock))
	if pub, err := ssh.NewPublicKey(key.Public()); err == nil {
		m.PublicKeyOpenssh = string(ssh.MarshalAuthorizedKey(pub))
		m.PublicKeyFingerprintMd5 = ssh.FingerprintLegacyMD5(pub)
		m.PublicKeyFingerprintSha256 = ssh.FingerprintSHA256(pub)
	}
	return m, nil
}

// ParsePrivateKeyPEM parses PKCS#1, SEC1 or PKCS#8 PEM and names its algorithm.
func ParsePrivateKeyPEM(s string) (crypto.Signer, string, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, "", fmt.Errorf("failed to decode PEM block: decoded bytes %d, undecoded %d", len(s)-len(rest), len(rest))
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, "", fmt.Errorf("unable to determine parser for PEM preamble: %s", block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("failed to parse private key given PEM preamble '%s': %w", block.Type, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, "RSA", nil
	case *ecdsa.PrivateKey:
		return k, "ECDSA", nil
	case ed25519.PrivateKey:
		return k, "ED25519", nil
	}
	return nil, "", fmt.Errorf("unsupported private key type: %T", key)
}

// subjectKeyID is the SHA-1 of the public key bits, computed as terraform-provider-tls does.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	var b []byte
	var err error
	switch k := pub.(type) {
	case *rsa.PublicKey:
		b, err = asn1.Marshal(*k)
	case *ecdsa.PublicKey:
		b = elliptic.Marshal(k.Curve, k.X, k.Y) //nolint:staticcheck // same bytes as the real provider (P-224 included)
	case ed25519.PublicKey:
		b, err = asn1.Marshal(k)
	default:
		err = fmt.Errorf("unsupported public key type %T", pub)
	}
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(b) //nolint:gosec
	return sum[:], nil
}
