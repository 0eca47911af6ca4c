// Package admin is a small loopback HTTP endpoint beside the API server for
// what tests cannot do through the Kubernetes API: compacting etcd.
//
//	POST /compact[?wait=true]          compact etcd to its current revision
//	POST /churn?n=N[&namespace=NS]     N writes to existing pods (MODIFIED events)
//	GET  /revision                     etcd's current revision
//
// Both answer JSON. /compact uses the API servers' own protocol (the
// compact_rev_key CAS of k8s.io/apiserver/pkg/storage/etcd3.Compact), so
// kube-apiserver learns the new compaction revision at once. Its watch cache
// polls that revision every 15 s (cacher compactorPollPeriod) before it drops
// list snapshots older than it; ?wait=true returns only after that period.
package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apiserver/pkg/storage/etcd3"
)

// CachePollPeriod is how long after a compaction the watch cache is sure to
// have seen it (k8s.io/apiserver/pkg/storage/cacher compactorPollPeriod is
// 15 s, plus a second).
const CachePollPeriod = 16 * time.Second

// Churner makes n writes to pods of namespace ("" for all) and returns the
// resourceVersion of the last one.
type Churner func(ctx context.Context, namespace string, n int) (string, error)

// Server serves the admin endpoints.
type Server struct {
	etcd  *clientv3.Client
	churn Churner
	http  *http.Server
	ln    net.Listener
	// URL is http://127.0.0.1:PORT.
	URL string
}

// Start listens on 127.0.0.1:port (0: a free port) and serves in the
// background.
func Start(port int, etcd *clientv3.Client, churn Churner) (*Server, error) {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	s := &Server{etcd: etcd, churn: churn, ln: ln, URL: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /compact", s.compact)
	mux.HandleFunc("POST /churn", s.churnPods)
	mux.HandleFunc("GET /revision", s.revision)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.http.Serve(ln)
	return s, nil
}

// Close stops serving.
func (s *Server) Close() error { return s.http.Close() }

// Compacted is the answer of POST /compact.
type Compacted struct {
	// Compacted is the revision compacted to: every resourceVersion below
	// it is gone from etcd.
	Compacted int64 `json:"compacted"`
	// Revision is etcd's revision after the compaction (the compaction
	// bookkeeping write makes it Compacted+1).
	Revision int64 `json:"revision"`
}

// Compact compacts etcd to its current revision, the way kube-apiserver's
// own compactor does.
func Compact(ctx context.Context, c *clientv3.Client) (Compacted, error) {
	var lastErr error
	for range 5 {
		resp, err := c.Get(ctx, "compact_rev_key")
		if err != nil {
			return Compacted{}, err
		}
		var version int64
		if len(resp.Kvs) > 0 {
			version = resp.Kvs[0].Version
		}
		rev := resp.Header.Revision
		_, cur, compacted, err := etcd3.Compact(ctx, c, version, rev)
		if err != nil {
			return Compacted{}, err
		}
		if compacted == rev {
			return Compacted{Compacted: rev, Revision: cur}, nil
		}
		// The API server's compactor moved the key in between: retry.
		lastErr = fmt.Errorf("compaction raced with another compactor (got %d, wanted %d)", compacted, rev)
	}
	return Compacted{}, lastErr
}

func (s *Server) compact(w http.ResponseWriter, r *http.Request) {
	res, err := Compact(r.Context(), s.etcd)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if r.URL.Query().Get("wait") == "true" {
		select {
		case <-time.After(CachePollPeriod):
		case <-r.Context().Done():
			return
		}
	}
	writeJSON(w, res)
}

// MaxChurn bounds one /churn request.
const MaxChurn = 1_000_000

func (s *Server) churnPods(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n < 1 || n > MaxChurn {
		http.Error(w, fmt.Sprintf("n must be an integer in 1..%d", MaxChurn), http.StatusBadRequest)
		return
	}
	start := time.Now()
	rv, err := s.churn(r.Context(), r.URL.Query().Get("namespace"), n)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, map[string]any{"writes": n, "resourceVersion": rv, "seconds": time.Since(start).Seconds()})
}

func (s *Server) revision(w http.ResponseWriter, r *http.Request) {
	resp, err := s.etcd.Get(r.Context(), "compact_rev_key", clientv3.WithCountOnly())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, map[string]int64{"revision": resp.Header.Revision})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
