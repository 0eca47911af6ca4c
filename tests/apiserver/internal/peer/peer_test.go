package peer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"kube-persist.dev/tests/apiserver/internal/report"
)

// A plain-http server with no auth, like kube-persist's simulator: a list of
// three pods, then a watch that stays open with nothing to say.
func fakeServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var lists atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/pods" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("watch") != "" {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		lists.Add(1)
		var items []string
		for i, key := range []string{"a/x", "a/y", "b/z"} {
			ns, name, _ := strings.Cut(key, "/")
			items = append(items, fmt.Sprintf(`{"metadata":{"namespace":%q,"name":%q,"uid":"u%d","resourceVersion":"%d"},"spec":{"containers":[{"name":"c","image":"i"}]}}`, ns, name, i, i+1))
		}
		fmt.Fprintf(w, `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"3"},"items":[%s]}`, strings.Join(items, ","))
	}))
	t.Cleanup(srv.Close)
	return srv, &lists
}

func TestReportAgainstAPlainHTTPServer(t *testing.T) {
	srv, lists := fakeServer(t)
	var out bytes.Buffer
	start := report.NowNs()
	if err := Run(start, []string{"--server", srv.URL, "--probe", "a/y", "--watch-list=false"}, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("want one line, got %q", out.String())
	}
	var r report.Child
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if !r.ProbeFound || r.Objects != 3 || r.Resumed != nil {
		t.Fatalf("report %s", out.String())
	}
	if !(start == r.MainNs && r.MainNs <= r.ReadyNs && r.ReadyNs <= r.FirstReadNs) {
		t.Fatalf("instants out of order: %s", out.String())
	}
	if r.PeakRSSBytes == 0 || r.Requests < 1 || r.Lists < 1 || r.Bytes == 0 || !strings.HasPrefix(r.Client, "client-go") {
		t.Fatalf("extras missing: %s", out.String())
	}
	if lists.Load() < 1 {
		t.Fatal("the server was never listed")
	}

	out.Reset()
	if err := Run(report.NowNs(), []string{"--server", srv.URL, "--probe", "a/nope"}, &out); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.ProbeFound {
		t.Fatalf("missing probe reported found: %s (%v)", out.String(), err)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	for _, args := range [][]string{
		{},
		{"--server", "http://x", "extra"},
		{"--server", "http://x", "--watch-list", "maybe"},
		{"--nope"},
	} {
		err := Run(0, args, &bytes.Buffer{})
		var u UsageError
		if !errors.As(err, &u) {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
}
