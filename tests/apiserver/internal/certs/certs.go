// Package certs makes the TLS material the test server needs: one CA that
// signs the serving certificate (127.0.0.1, ::1, localhost) and, for
// client-certificate authentication, a client certificate; plus the key
// that signs service-account tokens.
//
// Everything is ECDSA P-256: fast to generate, and accepted by Go's TLS,
// rustls and OpenSSL alike.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files names the PEM files of one set, all in one directory.
type Files struct {
	CACert     string // CA certificate: trust anchor for the serving cert, and client CA
	ServerCert string // serving certificate, signed by the CA
	ServerKey  string
	ClientCert string // client certificate (CN=kube-persist-admin, O=system:masters)
	ClientKey  string
	SAKey      string // service-account token signing key (private; the public half is derived)
}

// In returns the file names of a set kept in dir.
func In(dir string) Files {
	return Files{
		CACert:     filepath.Join(dir, "ca.crt"),
		ServerCert: filepath.Join(dir, "apiserver.crt"),
		ServerKey:  filepath.Join(dir, "apiserver.key"),
		ClientCert: filepath.Join(dir, "admin.crt"),
		ClientKey:  filepath.Join(dir, "admin.key"),
		SAKey:      filepath.Join(dir, "sa.key"),
	}
}

func (f Files) all() []string {
	return []string{f.CACert, f.ServerCert, f.ServerKey, f.ClientCert, f.ClientKey, f.SAKey}
}

// Exists reports whether every file of the set is present.
func (f Files) Exists() bool {
	for _, p := range f.all() {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// EnsureIn returns the set in dir, generating it if any file is missing
// (a set kept in a data directory survives restarts, so a kubeconfig
// written earlier stays valid).
func EnsureIn(dir string) (Files, error) {
	f := In(dir)
	if f.Exists() {
		return f, nil
	}
	return f, Generate(f)
}

// ClientUser and ClientGroup are the identity in the client certificate.
const (
	ClientUser  = "kube-persist-admin"
	ClientGroup = "system:masters"
)

// Generate writes a fresh set to the paths in f.
func Generate(f Files) error {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kube-persist-test-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	leaf := func(tmpl *x509.Certificate, certPath, keyPath string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl.SerialNumber = serial()
		tmpl.NotBefore = now.Add(-time.Hour)
		tmpl.NotAfter = now.Add(10 * 365 * 24 * time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.BasicConstraintsValid = true
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writePEM(certPath, "CERTIFICATE", der); err != nil {
			return err
		}
		return writeKey(keyPath, key)
	}
	if err := writePEM(f.CACert, "CERTIFICATE", caDER); err != nil {
		return err
	}
	if err := leaf(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.0.0.1")},
	}, f.ServerCert, f.ServerKey); err != nil {
		return err
	}
	if err := leaf(&x509.Certificate{
		Subject:     pkix.Name{CommonName: ClientUser, Organization: []string{ClientGroup}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, f.ClientCert, f.ClientKey); err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	return writeKey(f.SAKey, saKey)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n.Add(n, big.NewInt(1))
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der)
}

func writePEM(path, kind string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
	if data == nil {
		return errors.New("pem encoding failed")
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
