// Package loader fills a fresh API server with namespaces and realistic pods
// through the API itself, with a bounded pool of concurrent writers.
package loader

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kube-persist.dev/tests/apiserver/internal/podgen"
)

// Options says what to create.
type Options struct {
	Pods       int
	Namespaces int
	Seed       uint64
	// Workers is the number of concurrent writers.
	Workers int
	// Progress, if set, gets a line every 1000 pods.
	Progress io.Writer
}

// Result is what was created.
type Result struct {
	Pods int
	// Probe is the lowest namespace/name key among the created pods (what
	// kube-persist's bench reads as its probe); empty with no pods.
	Probe    string
	Duration time.Duration
}

// ClientConfig returns a copy of cfg tuned for bulk writes: no client-side
// rate limit, protobuf on the wire.
func ClientConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS = -1
	c.Burst = 0
	c.ContentType = "application/vnd.kubernetes.protobuf"
	c.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return c
}

// Load creates opts.Namespaces namespaces (ns-000, ...) each with its
// "default" ServiceAccount, then opts.Pods pods dealt round-robin across
// them. Each pod is created (field manager kube-controller-manager), then
// its status set (field manager kubelet), as on a real cluster.
func Load(ctx context.Context, cfg *rest.Config, opts Options) (Result, error) {
	start := time.Now()
	cs, err := kubernetes.NewForConfig(ClientConfig(cfg))
	if err != nil {
		return Result{}, err
	}
	if opts.Namespaces < 1 {
		opts.Namespaces = 1
	}
	if opts.Workers < 1 {
		opts.Workers = 1
	}
	if opts.Pods == 0 {
		return Result{Duration: time.Since(start)}, nil
	}
	nss := opts.Namespaces
	if nss > opts.Pods {
		nss = opts.Pods
	}
	if err := parallel(ctx, nss, opts.Workers, func(i int) error {
		return ensureNamespace(ctx, cs, podgen.NamespaceName(i))
	}); err != nil {
		return Result{}, err
	}

	var done atomic.Int64
	var keysMu sync.Mutex
	keys := make([]string, 0, opts.Pods)
	now := time.Now()
	err = parallel(ctx, opts.Pods, opts.Workers, func(i int) error {
		ns := podgen.NamespaceFor(i, opts.Namespaces)
		g := podgen.Pod(opts.Seed, ns, i, now)
		key, err := createPod(ctx, cs, g)
		if err != nil {
			return fmt.Errorf("pod %d (%s/%s): %w", i, ns, g.Pod.Name, err)
		}
		keysMu.Lock()
		keys = append(keys, key)
		keysMu.Unlock()
		if n := done.Add(1); opts.Progress != nil && n%1000 == 0 {
			fmt.Fprintf(opts.Progress, "loader: %d/%d pods in %s\n", n, opts.Pods, time.Since(start).Round(time.Millisecond))
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	sort.Strings(keys)
	return Result{Pods: len(keys), Probe: keys[0], Duration: time.Since(start)}, nil
}

func ensureNamespace(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	// Pods name serviceAccountName "default"; the ServiceAccount admission
	// plugin rejects them until it exists (normally the controller
	// manager's job, and there is none here).
	_, err = cs.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("serviceaccount %s/default: %w", name, err)
	}
	return nil
}

func createPod(ctx context.Context, cs kubernetes.Interface, g podgen.Generated) (string, error) {
	pods := cs.CoreV1().Pods(g.Pod.Namespace)
	created, err := pods.Create(ctx, g.Pod, metav1.CreateOptions{FieldManager: "kube-controller-manager"})
	if apierrors.IsAlreadyExists(err) {
		// A restart on a kept data dir: the pod is there from before.
		return g.Pod.Namespace + "/" + g.Pod.Name, nil
	}
	if err != nil {
		return "", err
	}
	created.Status = g.Status
	if _, err := pods.UpdateStatus(ctx, created, metav1.UpdateOptions{FieldManager: "kubelet"}); err != nil {
		return "", fmt.Errorf("status: %w", err)
	}
	return created.Namespace + "/" + created.Name, nil
}

// parallel runs f(0..n-1) on at most workers goroutines; the first error
// stops handing out work and is returned.
func parallel(ctx context.Context, n, workers int, f func(int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		// Cancelled from outside.
		return context.Cause(ctx)
	}
	return first
}

// ChurnAnnotation is the annotation Churn writes.
const ChurnAnnotation = "kube-persist.dev/churn"

// churned counts the writes Churn made in this process: each write sets
// ChurnAnnotation to a value never written before, since a patch that
// leaves a pod as it was is no write at all (no new resourceVersion, no
// event), and a later Churn over the same pods must change them again.
var churned atomic.Uint64

// Churn makes n writes to existing pods (a merge patch of ChurnAnnotation to
// the next value of a per-process write counter, one MODIFIED event each),
// round-robin over the first pool pods of the
// namespace ("" for all) in key order (pool <= 0: as many as n, so that n
// writes change n distinct pods while there are that many), with workers
// concurrent writers. It returns the resourceVersion of the last write it
// saw. Each pod has at most one writer at a time.
func Churn(ctx context.Context, cfg *rest.Config, namespace string, n, pool, workers int) (string, error) {
	c := rest.CopyConfig(cfg)
	c.QPS = -1
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return "", err
	}
	if pool <= 0 {
		pool = n
	}
	pods, err := firstPods(ctx, cs, namespace, pool)
	if err != nil {
		return "", err
	}
	if len(pods) == 0 {
		return "", fmt.Errorf("no pods to churn in %q", namespace)
	}
	base := churned.Add(uint64(n)) - uint64(n)
	var mu sync.Mutex
	var last uint64
	var lastRV string
	// Concurrent patches of one pod conflict and retry inside the server,
	// until they time out when many pile up: each pod gets its writes
	// (k = j, j+len(pods), ...) from one goroutine, in turn.
	err = parallel(ctx, len(pods), workers, func(j int) error {
		p := pods[j]
		for k := j; k < n; k += len(pods) {
			patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"%d"}}}`, ChurnAnnotation, base+uint64(k))
			got, err := cs.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "kube-persist-churn"})
			if err != nil {
				return fmt.Errorf("patch %s/%s: %w", p.Namespace, p.Name, err)
			}
			rv, _ := strconv.ParseUint(got.ResourceVersion, 10, 64)
			mu.Lock()
			if rv >= last {
				last, lastRV = rv, got.ResourceVersion
			}
			mu.Unlock()
		}
		return nil
	})
	return lastRV, err
}

// firstPods lists up to max pods of namespace ("" for all), a page of
// 1000 at a time.
func firstPods(ctx context.Context, cs kubernetes.Interface, namespace string, max int) ([]corev1.Pod, error) {
	var out []corev1.Pod
	opts := metav1.ListOptions{Limit: int64(min(max, 1000))}
	for {
		list, err := cs.CoreV1().Pods(namespace).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, list.Items...)
		if len(out) >= max || list.Continue == "" {
			return out[:min(len(out), max)], nil
		}
		opts.Continue = list.Continue
		opts.Limit = int64(min(max-len(out), 1000))
	}
}
