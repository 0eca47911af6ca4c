// Command apiserver runs a real kube-apiserver (k8s.io/kubernetes v1.37)
// in-process on an embedded etcd, on loopback, for kube-persist's tests and
// benchmarks: optionally filled with realistic pods, with a kubeconfig any
// client can use, and a small admin endpoint to compact etcd.
//
// Standard output carries only these lines, in this order:
//
//	kubeconfig FILE                      (with --kubeconfig)
//	pods created N in 12.3s              (with --pods N)
//	probe NAMESPACE/NAME                 (with --pods N > 0: the lowest pod key)
//	admin on http://127.0.0.1:PORT       (unless --admin-port -1; see internal/admin)
//	listening on https://127.0.0.1:PORT  (last: the server is ready)
//
// SIGTERM or SIGINT stops it: the API server shuts down, etcd closes, and the
// temporary directory (etcd data, certificates) is removed.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"kube-persist.dev/tests/apiserver/internal/admin"
	"kube-persist.dev/tests/apiserver/internal/certs"
	"kube-persist.dev/tests/apiserver/internal/etcd"
	"kube-persist.dev/tests/apiserver/internal/kubeapiserver"
	"kube-persist.dev/tests/apiserver/internal/kubeconfig"
	"kube-persist.dev/tests/apiserver/internal/loader"
)

type options struct {
	port           int
	adminPort      int
	kubeconfig     string
	readyFile      string
	dataDir        string
	pods           int
	namespaces     int
	seed           uint64
	workers        int
	auth           string
	token          string
	apiserverFlags []string
	logLevel       string
	verbosity      int
	progressNotify time.Duration
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := pflag.NewFlagSet("apiserver", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.IntVar(&o.port, "port", 0, "port of the API server on 127.0.0.1 (0: a free port)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "write a kubeconfig for the server to this file (KUBECONFIG=FILE is then all a client needs)")
	fs.IntVar(&o.pods, "pods", 0, "create this many realistic pods before reporting ready")
	fs.IntVar(&o.namespaces, "namespaces", 1, "deal the pods round-robin across this many namespaces (ns-000, ns-001, ...)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the generated pods")
	fs.IntVar(&o.workers, "workers", 32, "concurrent writers while creating pods")
	fs.IntVar(&o.adminPort, "admin-port", 0, "port of the admin endpoint (POST /compact, GET /revision) on 127.0.0.1; 0: a free port, -1: none")
	fs.StringVar(&o.readyFile, "ready-file", "", "once ready, write a JSON file {url, admin, kubeconfig, probe, pods} here (atomically)")
	fs.StringVar(&o.dataDir, "data-dir", "", "keep etcd data and certificates here across runs (default: a temporary directory removed on exit)")
	fs.StringVar(&o.auth, "auth", "token", "how the kubeconfig's user authenticates: token (bearer token) or cert (client certificate)")
	fs.StringVar(&o.token, "token", "", "the bearer token (default: random, or the one kept in --data-dir)")
	fs.DurationVar(&o.progressNotify, "etcd-progress-notify-interval", 0, "etcd's watch progress notification interval (0: etcd's default, 10m); e.g. 5s lets a quiet resource's watch cache follow etcd's revision")
	fs.StringArrayVar(&o.apiserverFlags, "apiserver-flag", nil, "an extra kube-apiserver flag, e.g. --apiserver-flag=--watch-cache=false (repeatable)")
	fs.StringVar(&o.logLevel, "log-level", "error", "server logs on stderr from this severity: info, warning, error")
	fs.IntVar(&o.verbosity, "v", 0, "kube-apiserver log verbosity (with --log-level info)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	switch {
	case o.pods < 0:
		return nil, errors.New("--pods must be >= 0")
	case o.namespaces < 1:
		return nil, errors.New("--namespaces must be >= 1")
	case o.workers < 1:
		return nil, errors.New("--workers must be >= 1")
	case o.auth != "token" && o.auth != "cert":
		return nil, fmt.Errorf("--auth must be token or cert, not %q", o.auth)
	case o.logLevel != "info" && o.logLevel != "warning" && o.logLevel != "error":
		return nil, fmt.Errorf("--log-level must be info, warning or error, not %q", o.logLevel)
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, pflag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiserver:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "apiserver:", err)
		os.Exit(1)
	}
}

func setupLogging(o *options) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	threshold := map[string]string{"info": "INFO", "warning": "WARNING", "error": "ERROR"}[o.logLevel]
	_ = fs.Set("logtostderr", "true")
	_ = fs.Set("legacy_stderr_threshold_behavior", "false")
	_ = fs.Set("stderrthreshold", threshold)
	_ = fs.Set("v", fmt.Sprint(o.verbosity))
}

// run serves until ctx is done, writing the lines documented above to
// stdout.
func run(ctx context.Context, o *options, stdout io.Writer) error {
	setupLogging(o)

	dir := o.dataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "kube-persist-apiserver-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	for _, sub := range []string{"etcd", "pki", "certs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "etcd"), 0o700); err != nil {
		return err
	}
	pki, err := certs.EnsureIn(filepath.Join(dir, "pki"))
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	token, err := ensureToken(filepath.Join(dir, "pki", "token"), o.token)
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(dir, "pki", "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(fmt.Sprintf("%s,%s,%s,\"%s\"\n", token, certs.ClientUser, certs.ClientUser, certs.ClientGroup)), 0o600); err != nil {
		return err
	}

	etcdLevel := map[string]string{"info": "info", "warning": "warn", "error": "error"}[o.logLevel]
	es, err := etcd.Start(filepath.Join(dir, "etcd"), etcdLevel, o.progressNotify)
	if err != nil {
		return err
	}
	defer es.Close()

	apiCtx, apiCancel := context.WithCancel(context.Background())
	defer apiCancel()
	srv, err := kubeapiserver.Start(apiCtx, kubeapiserver.Config{
		EtcdURL:    es.ClientURL,
		Port:       o.port,
		Certs:      pki,
		TokenFile:  tokenFile,
		CertDir:    filepath.Join(dir, "certs"),
		ExtraFlags: o.apiserverFlags,
	})
	if err != nil {
		return err
	}
	stopServer := func() {
		apiCancel()
		select {
		case <-srv.Done:
			if srv.Err != nil {
				klog.Errorf("kube-apiserver stopped: %v", srv.Err)
			}
		case <-time.After(60 * time.Second):
			klog.Errorf("kube-apiserver did not stop within 60s")
		}
	}
	defer stopServer()

	if o.kubeconfig != "" {
		ca, err := os.ReadFile(pki.CACert)
		if err != nil {
			return err
		}
		auth := kubeconfig.Auth{Token: token}
		if o.auth == "cert" {
			auth = kubeconfig.Auth{}
			if auth.ClientCert, err = os.ReadFile(pki.ClientCert); err != nil {
				return err
			}
			if auth.ClientKey, err = os.ReadFile(pki.ClientKey); err != nil {
				return err
			}
		}
		abs, err := filepath.Abs(o.kubeconfig)
		if err != nil {
			return err
		}
		o.kubeconfig = abs
		if err := kubeconfig.Write(abs, srv.URL, ca, auth); err != nil {
			return fmt.Errorf("write kubeconfig: %w", err)
		}
		fmt.Fprintf(stdout, "kubeconfig %s\n", abs)
	}

	var loaded loader.Result
	if o.pods > 0 {
		loaded, err = loader.Load(ctx, srv.Loopback, loader.Options{
			Pods: o.pods, Namespaces: o.namespaces, Seed: o.seed, Workers: o.workers, Progress: os.Stderr,
		})
		if err != nil {
			return fmt.Errorf("create pods: %w", err)
		}
		fmt.Fprintf(stdout, "pods created %d in %.1fs\n", loaded.Pods, loaded.Duration.Seconds())
		fmt.Fprintf(stdout, "probe %s\n", loaded.Probe)
	}

	var adminURL string
	if o.adminPort >= 0 {
		ec, err := es.Client()
		if err != nil {
			return err
		}
		defer ec.Close()
		churn := func(ctx context.Context, namespace string, n int) (string, error) {
			return loader.Churn(ctx, srv.Loopback, namespace, n, o.workers)
		}
		as, err := admin.Start(o.adminPort, ec, churn)
		if err != nil {
			return fmt.Errorf("admin endpoint: %w", err)
		}
		defer as.Close()
		adminURL = as.URL
		fmt.Fprintf(stdout, "admin on %s\n", adminURL)
	}

	if o.readyFile != "" {
		if err := writeReadyFile(o.readyFile, map[string]any{
			"url": srv.URL, "admin": adminURL, "kubeconfig": o.kubeconfig,
			"probe": loaded.Probe, "pods": loaded.Pods, "pid": os.Getpid(),
		}); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "listening on %s\n", srv.URL)

	select {
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "apiserver: stopping")
		return nil
	case <-srv.Done:
		return fmt.Errorf("kube-apiserver stopped: %v", srv.Err)
	}
}

// ensureToken returns the token to use: the one given, else the one kept at
// path, else a new random one (kept at path).
func ensureToken(path, given string) (string, error) {
	if given != "" {
		return given, os.WriteFile(path, []byte(given), 0o600)
	}
	if data, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(data))) > 0 {
		return strings.TrimSpace(string(data)), nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	t := hex.EncodeToString(b[:])
	return t, os.WriteFile(path, []byte(t), 0o600)
}

func writeReadyFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
