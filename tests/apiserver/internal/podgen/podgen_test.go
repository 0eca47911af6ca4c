package podgen

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestPodsAreDeterministic(t *testing.T) {
	a, b := Pod(7, "ns-000", 3, now), Pod(7, "ns-000", 3, now)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same (seed, namespace, index) gave different pods")
	}
	if reflect.DeepEqual(a, Pod(8, "ns-000", 3, now)) {
		t.Fatal("another seed gave the same pod")
	}
	if Name(7, "ns-000", 3) != a.Pod.Name {
		t.Fatal("Name disagrees with Pod")
	}
}

// The shape kube-persist's simulator serves: a Deployment's pod, 2-8 KiB of
// JSON once the server has added its metadata (managedFields, uid, ...),
// with sizes that vary.
func TestPodsAreShapedAndSizedLikeRealOnes(t *testing.T) {
	minLen, maxLen := 1<<30, 0
	containers := map[int]int{}
	for i := range 300 {
		g := Pod(1, "ns-000", i, now)
		p := g.Pod.DeepCopy()
		p.Status = g.Status
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		// The server adds ~0.7-1.5 KiB (uid, resourceVersion,
		// creationTimestamp, two managedFields entries).
		if len(data) < 1500 || len(data) > 7*1024 {
			t.Errorf("pod %d is %d bytes of JSON before the server's metadata", i, len(data))
		}
		minLen, maxLen = min(minLen, len(data)), max(maxLen, len(data))
		if errs := validation.IsDNS1123Subdomain(p.Name); len(errs) > 0 {
			t.Errorf("pod %d name %q: %v", i, p.Name, errs)
		}
		for _, k := range []string{"app", "pod-template-hash", "tier", "env", "team", "version"} {
			if p.Labels[k] == "" {
				t.Errorf("pod %d lacks label %s", i, k)
			}
		}
		if len(p.OwnerReferences) != 1 || p.OwnerReferences[0].Kind != "ReplicaSet" || p.OwnerReferences[0].UID == "" {
			t.Errorf("pod %d owner references: %+v", i, p.OwnerReferences)
		}
		if len(p.Spec.Containers) != len(g.Status.ContainerStatuses) {
			t.Errorf("pod %d: %d containers, %d statuses", i, len(p.Spec.Containers), len(g.Status.ContainerStatuses))
		}
		for j, c := range p.Spec.Containers {
			if c.Name != g.Status.ContainerStatuses[j].Name {
				t.Errorf("pod %d container %d: status for %q", i, j, g.Status.ContainerStatuses[j].Name)
			}
			if c.LivenessProbe == nil || len(c.Ports) == 0 || c.Resources.Requests.Cpu().IsZero() {
				t.Errorf("pod %d container %s lacks a probe, port or requests", i, c.Name)
			}
		}
		if len(g.Status.Conditions) != 5 || g.Status.PodIP == "" || g.Status.StartTime == nil {
			t.Errorf("pod %d status is thin: %+v", i, g.Status)
		}
		containers[len(p.Spec.Containers)]++
	}
	t.Logf("pod JSON sizes before server metadata: min %d max %d; containers per pod: %v", minLen, maxLen, containers)
	if maxLen-minLen < 1500 {
		t.Errorf("sizes hardly vary: %d..%d", minLen, maxLen)
	}
	if len(containers) != 3 {
		t.Errorf("want pods with 1, 2 and 3 containers, got %v", containers)
	}
}

func TestPodsOfOneAppShareTheirReplicaSet(t *testing.T) {
	owners := map[string]string{}
	for i := range 200 {
		p := Pod(1, "ns-001", i, now).Pod
		app := p.Labels["app"]
		rs := p.OwnerReferences[0].Name + "/" + string(p.OwnerReferences[0].UID)
		if prev, ok := owners[app]; ok && prev != rs {
			t.Fatalf("app %s has two ReplicaSets: %s and %s", app, prev, rs)
		}
		owners[app] = rs
		if want := p.OwnerReferences[0].Name + "-" + IndexSuffix(i); p.Name != want {
			t.Fatalf("pod name %s, want %s", p.Name, want)
		}
	}
}

func TestIndexSuffixesAreUniqueAndFixedWidth(t *testing.T) {
	seen := make(map[string]struct{}, 100_000)
	for i := range 100_000 {
		s := IndexSuffix(i)
		if len(s) != 5 {
			t.Fatalf("suffix %q of %d", s, i)
		}
		seen[s] = struct{}{}
	}
	if len(seen) != 100_000 {
		t.Fatalf("%d distinct suffixes for 100000 indexes", len(seen))
	}
	if IndexSuffix(0) != "bbbbb" || IndexSuffix(1) != "bbbbc" {
		t.Fatalf("suffixes start %q %q, as the simulator's: bbbbb bbbbc", IndexSuffix(0), IndexSuffix(1))
	}
}

func TestNamespacesAreDealtRoundRobin(t *testing.T) {
	got := []string{NamespaceFor(0, 3), NamespaceFor(1, 3), NamespaceFor(2, 3), NamespaceFor(3, 3), NamespaceFor(5, 0)}
	want := []string{"ns-000", "ns-001", "ns-002", "ns-000", "ns-000"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
