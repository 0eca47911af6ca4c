// Package kubeapiserver runs the real kube-apiserver (k8s.io/kubernetes
// cmd/kube-apiserver/app) in-process, configured through its own flags the
// way the kube-apiserver binary is, but on a listener we open ourselves so
// that port 0 works and only loopback is bound.
package kubeapiserver

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	basecompatibility "k8s.io/component-base/compatibility"
	"k8s.io/component-base/featuregate"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"

	"kube-persist.dev/tests/apiserver/internal/certs"
)

// Config says how to run the server.
type Config struct {
	// EtcdURL is the etcd client URL (http://127.0.0.1:PORT).
	EtcdURL string
	// Port to listen on, on 127.0.0.1; 0 picks a free one.
	Port int
	// Certs is the TLS material (serving cert, client CA, SA key).
	Certs certs.Files
	// TokenFile is a --token-auth-file (CSV: token,user,uid,"group1,group2").
	TokenFile string
	// CertDir is the --cert-dir (unused files the server may write).
	CertDir string
	// ExtraFlags are more kube-apiserver flags, e.g. "--watch-cache=false";
	// they are parsed after the defaults here and so override them.
	ExtraFlags []string
}

// Server is a running kube-apiserver.
type Server struct {
	// URL is https://127.0.0.1:PORT.
	URL string
	// Port is the bound port.
	Port int
	// Loopback is the server's own privileged loopback client config.
	Loopback *rest.Config
	// Done is closed when the server has stopped; Err is set then.
	Done chan struct{}
	Err  error
}

// Flags returns the kube-apiserver flags this package sets, before
// cfg.ExtraFlags.
func Flags(cfg Config, port int) []string {
	return []string{
		"--etcd-servers=" + cfg.EtcdURL,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + cfg.CertDir,
		"--tls-cert-file=" + cfg.Certs.ServerCert,
		"--tls-private-key-file=" + cfg.Certs.ServerKey,
		"--client-ca-file=" + cfg.Certs.CACert,
		"--token-auth-file=" + cfg.TokenFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + cfg.Certs.SAKey,
		"--service-account-signing-key-file=" + cfg.Certs.SAKey,
		"--service-cluster-ip-range=10.0.0.0/16",
		// The "kubernetes" Service would advertise a loopback address; a
		// single test server has no peers to reconcile with.
		"--endpoint-reconciler-type=none",
		"--authorization-mode=RBAC",
		"--enable-priority-and-fairness=true",
	}
}

// Start runs kube-apiserver until ctx is cancelled and waits for /readyz.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.Port))
	if err != nil {
		return nil, fmt.Errorf("listen on 127.0.0.1:%d: %w", cfg.Port, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	closeLn := true
	defer func() {
		if closeLn {
			ln.Close()
		}
	}()

	s := options.NewServerRunOptions()
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	args := append(Flags(cfg, port), cfg.ExtraFlags...)
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("kube-apiserver flags %s: %w", strings.Join(args, " "), err)
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, err
	}
	// As the kube-apiserver command does: its loopback clients should not
	// log the server's own warnings.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})

	s.SecureServing.Listener = ln
	s.SecureServing.BindPort = port
	s.SecureServing.ExternalAddress = net.ParseIP("127.0.0.1")

	completed, err := s.Complete(ctx)
	if err != nil {
		return nil, fmt.Errorf("complete kube-apiserver options: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return nil, fmt.Errorf("kube-apiserver options: %w", utilerrors.NewAggregate(errs))
	}
	featureGate := s.GenericServerRunOptions.ComponentGlobalsRegistry.FeatureGateFor(basecompatibility.DefaultKubeComponent)
	if mg, ok := featureGate.(featuregate.MutableFeatureGate); ok {
		mg.AddMetrics()
	}

	config, err := app.NewConfig(completed)
	if err != nil {
		return nil, err
	}
	done, err := config.Complete()
	if err != nil {
		return nil, err
	}
	chain, err := app.CreateServerChain(done)
	if err != nil {
		return nil, fmt.Errorf("create server chain: %w", err)
	}
	prepared, err := chain.PrepareRun()
	if err != nil {
		return nil, err
	}
	closeLn = false // the server owns it now

	srv := &Server{
		URL:      fmt.Sprintf("https://127.0.0.1:%d", port),
		Port:     port,
		Loopback: rest.CopyConfig(chain.GenericAPIServer.LoopbackClientConfig),
		Done:     make(chan struct{}),
	}
	go func() {
		defer close(srv.Done)
		srv.Err = prepared.Run(ctx)
	}()
	if err := waitReady(ctx, srv); err != nil {
		return nil, err
	}
	return srv, nil
}

func waitReady(ctx context.Context, srv *Server) error {
	cs, err := kubernetes.NewForConfig(srv.Loopback)
	if err != nil {
		return err
	}
	deadline := time.After(2 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		select {
		case <-srv.Done:
			return fmt.Errorf("kube-apiserver stopped while starting: %v", srv.Err)
		case <-deadline:
			return fmt.Errorf("kube-apiserver not ready after 2m: %s", last)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		body, err := cs.CoreV1().RESTClient().Get().AbsPath("/readyz").Do(ctx).Raw()
		if err == nil {
			return nil
		}
		last = strings.TrimSpace(string(body))
		if last == "" {
			last = err.Error()
		}
	}
}
