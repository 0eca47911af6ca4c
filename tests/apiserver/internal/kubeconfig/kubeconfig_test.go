package kubeconfig

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"kube-persist.dev/tests/apiserver/internal/certs"
)

// A TLS server with the generated serving certificate that requires client
// certificates signed by the same CA, and answers who called.
func tlsServer(t *testing.T, pki certs.Files) *httptest.Server {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(pki.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "":
			w.Write([]byte(r.Header.Get("Authorization")))
		case len(r.TLS.PeerCertificates) > 0:
			c := r.TLS.PeerCertificates[0]
			w.Write([]byte("cert " + c.Subject.CommonName + " " + strings.Join(c.Subject.Organization, ",")))
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func load(t *testing.T, path string) *rest.Config {
	t.Helper()
	t.Setenv("KUBECONFIG", path)
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func get(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(cfg.Host + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	sb.Write(buf[:n])
	return sb.String()
}

func TestKubeconfigIsAllAClientNeeds(t *testing.T) {
	dir := t.TempDir()
	pki := certs.In(dir)
	if err := certs.Generate(pki); err != nil {
		t.Fatal(err)
	}
	srv := tlsServer(t, pki)
	server := srv.URL
	ca, _ := os.ReadFile(pki.CACert)

	path := filepath.Join(dir, "kubeconfig")
	if err := Write(path, server, ca, Auth{Token: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig mode: %v %v", fi.Mode(), err)
	}
	cfg := load(t, path)
	if cfg.Host != server || cfg.BearerToken != "s3cret" {
		t.Fatalf("loaded host %q token %q", cfg.Host, cfg.BearerToken)
	}
	if got := get(t, cfg); got != "Bearer s3cret" {
		t.Fatalf("server saw %q", got)
	}

	cert, _ := os.ReadFile(pki.ClientCert)
	key, _ := os.ReadFile(pki.ClientKey)
	if err := Write(path, server, ca, Auth{ClientCert: cert, ClientKey: key}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, load(t, path)); got != "cert kube-persist-admin system:masters" {
		t.Fatalf("server saw %q", got)
	}
}

func TestKubeconfigNeedsCredentials(t *testing.T) {
	if _, err := Build("https://127.0.0.1:1", []byte("x"), Auth{}); err == nil {
		t.Fatal("built a kubeconfig with no credentials")
	}
}

func TestServingCertCoversLocalhostNames(t *testing.T) {
	dir := t.TempDir()
	pki := certs.In(dir)
	if err := certs.Generate(pki); err != nil {
		t.Fatal(err)
	}
	srv := tlsServer(t, pki)
	ca, _ := os.ReadFile(pki.CACert)
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	for _, host := range []string{"127.0.0.1", "localhost"} {
		path := filepath.Join(dir, host)
		if err := Write(path, "https://"+host+port, ca, Auth{Token: "t"}); err != nil {
			t.Fatal(err)
		}
		if got := get(t, load(t, path)); got != "Bearer t" {
			t.Fatalf("%s: server saw %q", host, got)
		}
	}
	// A set kept in a directory is reused, not regenerated.
	before, _ := os.ReadFile(pki.CACert)
	if _, err := certs.EnsureIn(dir); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(pki.CACert)
	if string(before) != string(after) {
		t.Fatal("EnsureIn regenerated an existing set")
	}
}
