// Package podgen makes realistic Pods, shaped like the ones kube-persist's
// simulator serves (src/sim/fixtures.rs `pod`): a Deployment's pod with
// labels, a ReplicaSet owner, one to three containers with env, ports,
// resources, probes and mounts, and a kubelet-like status with conditions
// and container statuses. Deterministic in (seed, namespace, index); the
// names follow the same scheme (app-<10 char hash>-<5 char index suffix>)
// and namespaces the same names (ns-000, ns-001, ...), though the random
// choices differ from the Rust generator's.
//
// A real API server sets uid, creationTimestamp and managedFields itself and
// ignores status on create, so a pod is made in two writes, like a
// kubelet's: Pod() for the create, then Status() for UpdateStatus.
package podgen

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var (
	apps  = []string{"web", "api", "checkout", "search", "ingest", "billing", "auth", "worker", "cache", "metrics"}
	tiers = []string{"frontend", "backend", "db", "cache", "batch"}
	envs  = []string{"prod", "staging", "dev"}
	teams = []string{"payments", "platform", "growth", "data"}
)

// Alphabet of generated name suffixes (the real server's, and the sim's).
const Alphabet = "bcdfghjklmnpqrstvwxz2456789"

// NamespaceName is the name of the i-th generated namespace: ns-000, ...
func NamespaceName(i int) string { return fmt.Sprintf("ns-%03d", i) }

// NodeName is the name of the i-th node a pod may be bound to.
func NodeName(i int) string { return fmt.Sprintf("node-%03d", i) }

// NamespaceFor is the namespace of pod index i among n namespaces: pods are
// dealt round-robin, as in the simulator.
func NamespaceFor(i, n int) string {
	if n < 1 {
		n = 1
	}
	return NamespaceName(i % n)
}

// IndexSuffix is a 5-character suffix unique to index (below 27^5).
func IndexSuffix(index int) string {
	out := []byte("bbbbb")
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = Alphabet[index%len(Alphabet)]
		index /= len(Alphabet)
	}
	return string(out)
}

func rngFor(seed uint64, parts []string, index int) *rand.Rand {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(seed >> (8 * i))
	}
	h.Write(b[:])
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return rand.New(rand.NewPCG(h.Sum64(), uint64(index)*0x9e3779b97f4a7c15))
}

func pick(r *rand.Rand, from []string) string { return from[r.IntN(len(from))] }

// between returns a value in [lo, hi).
func between(r *rand.Rand, lo, hi int) int { return lo + r.IntN(hi-lo) }

func suffix(r *rand.Rand, n int) string {
	var sb strings.Builder
	sb.Grow(n)
	for range n {
		sb.WriteByte(Alphabet[r.IntN(len(Alphabet))])
	}
	return sb.String()
}

// uid is a random UUID-shaped string, for owner references.
func uid(r *rand.Rand) types.UID {
	const hex = "0123456789abcdef"
	var sb strings.Builder
	for i, n := range []int{8, 4, 4, 4, 12} {
		if i > 0 {
			sb.WriteByte('-')
		}
		for range n {
			sb.WriteByte(hex[r.IntN(16)])
		}
	}
	return types.UID(sb.String())
}

// Generated is one pod: what to create and the status to set after.
type Generated struct {
	Pod    *corev1.Pod
	Status corev1.PodStatus
}

// Name returns the pod name for (seed, namespace, index) without building
// the whole pod.
func Name(seed uint64, namespace string, index int) string {
	return Pod(seed, namespace, index, time.Unix(0, 0)).Pod.Name
}

// Pod builds pod number index of namespace. now anchors the status
// timestamps (start times are a few seconds after it).
func Pod(seed uint64, namespace string, index int, now time.Time) Generated {
	r := rngFor(seed, []string{"pod", namespace}, index)
	app := pick(r, apps)
	// Pods of one app in one namespace share their ReplicaSet.
	rsRng := rngFor(seed, []string{"rs", namespace, app}, 0)
	templateHash := suffix(rsRng, 10)
	rsUID := uid(rsRng)
	rsName := app + "-" + templateHash
	name := rsName + "-" + IndexSuffix(index)
	tier := pick(r, tiers)
	started := metav1.NewTime(now.Add(time.Duration(between(r, 1, 30)) * time.Second).UTC().Truncate(time.Second))
	running := metav1.NewTime(started.Add(2 * time.Second))
	node := NodeName(r.IntN(20))
	podIP := fmt.Sprintf("10.244.%d.%d", r.IntN(256), between(r, 2, 255))

	nContainers := 1
	switch n := r.IntN(100); {
	case n >= 85:
		nContainers = 3
	case n >= 55:
		nContainers = 2
	}
	var containers []corev1.Container
	var statuses []corev1.ContainerStatus
	for c := range nContainers {
		cname := app
		if c > 0 {
			cname = fmt.Sprintf("sidecar-%d", c)
		}
		image := fmt.Sprintf("registry.example.com/%s/%s:1.%d.%d", app, cname, r.IntN(40), r.IntN(10))
		// Fewer env vars than the simulator's (12/4): the real server's
		// managedFields list every field, so the same content weighs more.
		maxEnv := 3
		if c == 0 {
			maxEnv = 8
		}
		var env []corev1.EnvVar
		for i := range r.IntN(maxEnv) {
			env = append(env, corev1.EnvVar{
				Name:  fmt.Sprintf("%s_SETTING_%d", strings.ToUpper(app), i),
				Value: suffix(r, between(r, 4, 40)),
			})
		}
		port := int32(8080 + c)
		containers = append(containers, corev1.Container{
			Name:            cname,
			Image:           image,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: port, Protocol: corev1.ProtocolTCP}},
			Env:             env,
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse(fmt.Sprintf("%dm", between(r, 50, 1000))),
					corev1.ResourceMemory: resource.MustParse(fmt.Sprintf("%dMi", between(r, 64, 2048))),
				},
				Limits: corev1.ResourceList{
					corev1.ResourceMemory: resource.MustParse(fmt.Sprintf("%dMi", between(r, 2048, 4096))),
				},
			},
			LivenessProbe: &corev1.Probe{
				ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: "/healthz", Port: intstr.FromInt32(port), Scheme: corev1.URISchemeHTTP,
				}},
				InitialDelaySeconds: 10, PeriodSeconds: 10, TimeoutSeconds: 1,
				SuccessThreshold: 1, FailureThreshold: 3,
			},
			VolumeMounts: []corev1.VolumeMount{{
				Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true,
			}},
			TerminationMessagePath:   "/dev/termination-log",
			TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		})
		started := true
		statuses = append(statuses, corev1.ContainerStatus{
			Name:         cname,
			Image:        image,
			ImageID:      image + "@sha256:" + suffix(r, 32),
			ContainerID:  "containerd://" + suffix(r, 32),
			Ready:        true,
			Started:      &started,
			RestartCount: int32(r.IntN(3)),
			State:        corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: running}},
		})
	}
	phase := corev1.PodRunning
	switch n := r.IntN(100); {
	case n >= 98:
		phase = corev1.PodFailed
	case n >= 96:
		phase = corev1.PodSucceeded
	case n >= 90:
		phase = corev1.PodPending
	}
	annotations := map[string]string{
		"kubectl.kubernetes.io/restartedAt": now.UTC().Add(-time.Duration(r.IntN(86_400*90)) * time.Second).Format(time.RFC3339),
	}
	if r.IntN(5) == 0 {
		annotations["example.com/build-info"] = suffix(r, between(r, 200, 700))
	}
	labels := map[string]string{
		"app":               app,
		"pod-template-hash": templateHash,
		"tier":              tier,
		"env":               pick(r, envs),
		"team":              pick(r, teams),
		"version":           fmt.Sprintf("v%d", between(r, 1, 6)),
	}
	yes := true
	mode := int32(420)
	expiry := int64(3607)
	grace := int64(30)
	toleration := int64(300)
	priority := int32(0)
	preempt := corev1.PreemptLowerPriority
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:         name,
			GenerateName: rsName + "-",
			Namespace:    namespace,
			Labels:       labels,
			Annotations:  annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rsName, UID: rsUID,
				Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		Spec: corev1.PodSpec{
			Containers: containers,
			Volumes: []corev1.Volume{{
				Name: "kube-api-access",
				VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
					DefaultMode: &mode,
					Sources: []corev1.VolumeProjection{
						{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: &expiry, Path: "token"}},
						{ConfigMap: &corev1.ConfigMapProjection{
							LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
							Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
						}},
						{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{
							Path:     "namespace",
							FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
						}}}},
					},
				}},
			}},
			NodeName:                      node,
			RestartPolicy:                 corev1.RestartPolicyAlways,
			SchedulerName:                 "default-scheduler",
			ServiceAccountName:            "default",
			DNSPolicy:                     corev1.DNSClusterFirst,
			TerminationGracePeriodSeconds: &grace,
			EnableServiceLinks:            &yes,
			Priority:                      &priority,
			PreemptionPolicy:              &preempt,
			Tolerations: []corev1.Toleration{
				{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &toleration},
				{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &toleration},
			},
		},
	}
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: started}
	}
	status := corev1.PodStatus{
		Phase: phase,
		Conditions: []corev1.PodCondition{
			cond("PodReadyToStartContainers"), cond(corev1.PodInitialized), cond(corev1.PodReady),
			cond(corev1.ContainersReady), cond(corev1.PodScheduled),
		},
		HostIP:            fmt.Sprintf("10.0.0.%d", between(r, 1, 250)),
		HostIPs:           nil,
		PodIP:             podIP,
		PodIPs:            []corev1.PodIP{{IP: podIP}},
		StartTime:         &started,
		ContainerStatuses: statuses,
		QOSClass:          corev1.PodQOSBurstable,
	}
	status.HostIPs = []corev1.HostIP{{IP: status.HostIP}}
	return Generated{Pod: pod, Status: status}
}
