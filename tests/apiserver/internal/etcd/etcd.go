// Package etcd runs a single-member etcd in-process (go.etcd.io/etcd/server/v3/embed)
// on loopback, for the API server to store into.
package etcd

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Server is a running embedded etcd.
type Server struct {
	etcd      *embed.Etcd
	ClientURL string // http://127.0.0.1:PORT
}

// Start runs etcd with its data in dir. fsync is off (UnsafeNoFsync): the
// data is a test fixture, and fsync on every write would make loading
// thousands of pods slow. logLevel is zap's ("error", "warn", "info").
//
// progressNotify, if not zero, is etcd's --watch-progress-notify-interval
// (etcd's default is 10 minutes): how often a quiet watch, such as the API
// server's watch cache of one resource, learns etcd's current revision.
func Start(dir, logLevel string, progressNotify time.Duration) (*Server, error) {
	var lastErr error
	// Free ports are picked by binding and closing; another process can
	// take one in between, so try a few times.
	for range 5 {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		s, err := start(dir, logLevel, progressNotify, ports[0], ports[1])
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(dir, logLevel string, progressNotify time.Duration, clientPort, peerPort int) (*Server, error) {
	cfg := embed.NewConfig()
	cfg.Name = "kube-persist-test"
	cfg.Dir = dir
	cfg.UnsafeNoFsync = true
	if progressNotify > 0 {
		cfg.WatchProgressNotifyInterval = progressNotify
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A restart on the same data dir must not try to form a new cluster
	// with a different peer URL: etcd only reads the initial cluster when
	// the data dir is empty; force-new-cluster rewrites the membership to
	// this single member, peer URL included.
	cfg.ForceNewCluster = true
	level := zapcore.ErrorLevel
	if err := level.Set(logLevel); err != nil {
		level = zapcore.ErrorLevel
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.OutputPaths = []string{"stderr"}
	zc.ErrorOutputPaths = []string{"stderr"}
	lg, err := zc.Build()
	if err != nil {
		return nil, err
	}
	lg = lg.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return quietClose{c} }))
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg.Named("etcd"))

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd failed while starting: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd did not become ready in 60s")
	}
	return &Server{etcd: e, ClientURL: clientURL.String()}, nil
}

// Client returns a new etcd client of this server; the caller closes it.
func (s *Server) Client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{s.ClientURL},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// Revision is etcd's current revision.
func Revision(ctx context.Context, c *clientv3.Client) (int64, error) {
	resp, err := c.Get(ctx, "compact_rev_key", clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// Close stops etcd and waits for it.
func (s *Server) Close() { s.etcd.Close() }

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// quietClose drops the errors etcd logs when its own listeners and servers
// are closed on a normal shutdown.
type quietClose struct{ zapcore.Core }

func (q quietClose) With(fields []zapcore.Field) zapcore.Core { return quietClose{q.Core.With(fields)} }

func (q quietClose) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if q.Enabled(e.Level) {
		return ce.AddCore(e, q)
	}
	return ce
}

func (q quietClose) Write(e zapcore.Entry, fields []zapcore.Field) error {
	for _, f := range fields {
		err, ok := f.Interface.(error)
		if !ok {
			continue
		}
		for _, closed := range []string{"use of closed network connection", "mux: server closed", "http: Server closed"} {
			if strings.Contains(err.Error(), closed) {
				return nil
			}
		}
	}
	return q.Core.Write(e, fields)
}
