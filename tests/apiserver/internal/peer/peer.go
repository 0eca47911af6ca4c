// Package peer is the client-go informer that cmd/clientgo-informer runs:
// see that command for what it does and prints.
package peer

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"kube-persist.dev/tests/apiserver/internal/report"
)

// UsageError is a bad command line (exit status 2).
type UsageError struct{ error }

type options struct {
	server     string
	kubeconfig string
	probe      string
	waitStdin  bool
	json       bool
	watchList  string
	timeout    time.Duration
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("clientgo-informer", flag.ContinueOnError)
	fs.StringVar(&o.server, "server", "", "API server URL; http://... needs no credentials (e.g. kube-persist's simulator)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG when --server is not given)")
	fs.StringVar(&o.probe, "probe", "", "namespace/name of a pod to look up once synced")
	fs.BoolVar(&o.waitStdin, "wait-stdin", false, "after the report, keep the informer running until stdin reaches EOF")
	fs.BoolVar(&o.json, "json", false, "speak JSON only, as kube-rs does (client-go v0.37 asks for protobuf by default for built-in types, and falls back to JSON where a server has none)")
	fs.StringVar(&o.watchList, "watch-list", "", "true/false: client-go's streaming list (WatchListClient feature; default: client-go's own default, on in v0.37)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up if not synced by then")
	if err := fs.Parse(args); err != nil {
		return nil, UsageError{err}
	}
	if fs.NArg() > 0 {
		return nil, UsageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	if o.server == "" && o.kubeconfig == "" && os.Getenv("KUBECONFIG") == "" {
		return nil, UsageError{errors.New("give --server URL or --kubeconfig FILE (or set KUBECONFIG)")}
	}
	if o.watchList != "" && o.watchList != "true" && o.watchList != "false" {
		return nil, UsageError{fmt.Errorf("--watch-list must be true or false, not %q", o.watchList)}
	}
	return o, nil
}

// restConfig builds the client config: --server alone is a plain URL with no
// credentials; --kubeconfig (or $KUBECONFIG) is read as kubectl does, with
// --server overriding its cluster address.
func restConfig(o *options) (*rest.Config, error) {
	if o.kubeconfig == "" && o.server != "" {
		return &rest.Config{Host: o.server}, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.kubeconfig != "" {
		rules.ExplicitPath = o.kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{}
	if o.server != "" {
		overrides.ClusterInfo.Server = o.server
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
}

// counter counts requests and response body bytes.
type counter struct {
	requests, bytes, lists, watches atomic.Uint64
}

func (c *counter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		c.requests.Add(1)
		q := req.URL.Query()
		if w := q.Get("watch"); w == "true" || w == "1" {
			c.watches.Add(1)
		} else if req.Method == http.MethodGet {
			c.lists.Add(1)
		}
		resp, err := rt.RoundTrip(req)
		if resp != nil && resp.Body != nil {
			resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.bytes}
		}
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type countingBody struct {
	io.ReadCloser
	n *atomic.Uint64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(uint64(n))
	return n, err
}

func clientVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/client-go" {
				v := d.Version
				if d.Replace != nil {
					v = d.Replace.Version
				}
				return "client-go " + v
			}
		}
	}
	return "client-go"
}

// Run runs the informer with the command-line args, writing the report line
// to out. mainNs is when the process's main started (report.NowNs).
func Run(mainNs uint64, args []string, out io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if o.watchList != "" {
		// client-go reads its feature gates from the environment.
		os.Setenv("KUBE_FEATURE_WatchListClient", o.watchList)
	}
	// client-go logs through klog; keep stderr to warnings and errors.
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("legacy_stderr_threshold_behavior", "false")
	_ = klogFlags.Set("stderrthreshold", "WARNING")

	cfg, err := restConfig(o)
	if err != nil {
		return err
	}
	cfg.UserAgent = "kube-persist-clientgo-informer"
	if o.json {
		cfg.ContentType = "application/json"
		cfg.AcceptContentTypes = "application/json"
	}
	var c counter
	cfg.Wrap(c.wrap)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	informerCtx, stopInformers := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactory(cs, 0)
	informer := factory.Core().V1().Pods().Informer()
	factory.Start(informerCtx.Done())
	defer func() {
		// Shutdown waits for the informers, which stop on their channel.
		stopInformers()
		factory.Shutdown()
	}()

	select {
	case <-informer.HasSyncedChecker().Done():
	case <-ctx.Done():
		return errors.New("interrupted before the informer synced")
	case <-time.After(o.timeout):
		return fmt.Errorf("informer not synced after %s", o.timeout)
	}
	readyNs := report.NowNs()
	indexer := informer.GetIndexer()
	objects := len(indexer.ListKeys())
	found := false
	if o.probe != "" {
		_, found, err = indexer.GetByKey(o.probe)
		if err != nil {
			return err
		}
	}
	firstReadNs := report.NowNs()
	r := &report.Child{
		MainNs:       mainNs,
		FirstReadNs:  firstReadNs,
		ReadyNs:      readyNs,
		Objects:      uint64(objects),
		ProbeFound:   found,
		PeakRSSBytes: report.PeakRSSBytes(),
		Requests:     c.requests.Load(),
		Bytes:        c.bytes.Load(),
		Lists:        c.lists.Load(),
		Watches:      c.watches.Load(),
		Client:       clientVersion(),
	}
	if err := report.Emit(out, r); err != nil {
		return err
	}
	// From here on, the watch failing as the informer stops is expected.
	defer klogFlags.Set("stderrthreshold", "FATAL")
	if o.waitStdin {
		done := make(chan struct{})
		go func() {
			io.Copy(io.Discard, bufio.NewReader(os.Stdin))
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	return nil
}
