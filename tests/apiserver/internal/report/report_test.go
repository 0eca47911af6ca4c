package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestLineHasTheRustReadersFieldsAndOptionalExtras(t *testing.T) {
	var buf bytes.Buffer
	if err := Emit(&buf, &Child{MainNs: 1, FirstReadNs: 3, ReadyNs: 2, Objects: 10, ProbeFound: true, PeakRSSBytes: 4096}); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("not one line: %q", line)
	}
	want := `{"main_ns":1,"first_read_ns":3,"ready_ns":2,"objects":10,"probe_found":true,"resumed":null,"peak_rss_bytes":4096}` + "\n"
	if line != want {
		t.Fatalf("got  %s\nwant %s", line, want)
	}

	buf.Reset()
	if err := Emit(&buf, &Child{Requests: 3, Bytes: 100, Lists: 1, Watches: 2, Client: "client-go v0"}); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"main_ns", "first_read_ns", "ready_ns", "objects", "probe_found", "resumed", "peak_rss_bytes", "requests", "bytes", "lists", "watches", "client"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %s missing from %s", k, buf.String())
		}
	}
}

func TestMonotonicClockTracksRealTime(t *testing.T) {
	a := NowNs()
	time.Sleep(2 * time.Millisecond)
	b := NowNs()
	if a == 0 || b-a < uint64(2*time.Millisecond) || b-a > uint64(time.Second) {
		t.Fatalf("clock readings %d then %d", a, b)
	}
}

func TestPeakRSS(t *testing.T) {
	status := "Name:\tx\nVmPeak:\t  100 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1000 kB\n"
	if got := ParseVmHWM([]byte(status)); got != 2048*1024 {
		t.Fatalf("VmHWM parsed as %d", got)
	}
	if got := ParseVmHWM([]byte("VmRSS:\t1 kB\n")); got != 0 {
		t.Fatalf("missing VmHWM parsed as %d", got)
	}
	if got := PeakRSSBytes(); got < 1<<20 {
		t.Fatalf("this process's peak RSS is %d bytes", got)
	}
}
