// Package report is the one JSON line a bench child prints: the same shape
// as kube-persist's ChildReport (src/bench/child.rs), with instants on the
// system-wide CLOCK_MONOTONIC so the parent can subtract its own readings.
package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Child mirrors ChildReport. The first seven fields are the ones the Rust
// reader requires; the rest are extras it may ignore (omitted when zero).
type Child struct {
	MainNs       uint64 `json:"main_ns"`
	FirstReadNs  uint64 `json:"first_read_ns"`
	ReadyNs      uint64 `json:"ready_ns"`
	Objects      uint64 `json:"objects"`
	ProbeFound   bool   `json:"probe_found"`
	Resumed      *bool  `json:"resumed"` // always null: client-go keeps no store
	PeakRSSBytes uint64 `json:"peak_rss_bytes"`

	// Requests is the number of HTTP requests sent before ready.
	Requests uint64 `json:"requests,omitempty"`
	// Bytes is the response body bytes read before ready.
	Bytes uint64 `json:"bytes,omitempty"`
	// Lists and Watches split Requests by kind (a LIST page is one list).
	Lists   uint64 `json:"lists,omitempty"`
	Watches uint64 `json:"watches,omitempty"`
	// Client names the contender, e.g. "client-go v0.37.2".
	Client string `json:"client,omitempty"`
}

// NowNs reads CLOCK_MONOTONIC in nanoseconds: the clock Rust's
// std::time::Instant and kube-persist's bench::clock read on Linux.
func NowNs() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Sec)*1_000_000_000 + uint64(ts.Nsec)
}

// PeakRSSBytes is VmHWM from /proc/self/status in bytes, 0 if unknown.
func PeakRSSBytes() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	return ParseVmHWM(data)
}

// ParseVmHWM extracts VmHWM (kB) from a /proc/PID/status text, in bytes.
func ParseVmHWM(status []byte) uint64 {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte("VmHWM:"))
		if !ok {
			continue
		}
		rest = bytes.TrimSpace(rest)
		rest = bytes.TrimSpace(bytes.TrimSuffix(rest, []byte("kB")))
		kib, err := strconv.ParseUint(string(rest), 10, 64)
		if err != nil {
			return 0
		}
		return kib * 1024
	}
	return 0
}

// Emit writes r as one JSON line.
func Emit(w io.Writer, r *Child) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	_, err = w.Write(data)
	return err
}
