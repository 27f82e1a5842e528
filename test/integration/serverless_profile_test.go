package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/pkg/apis/config"
	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// profileClient is an admin client that knows serverless.gantry.dev.
func profileClient(t *testing.T, env *testenv.Env) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := sv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createProfile creates a profile, deletes it when the test ends, and waits for it to be
// Active.
func createProfile(t *testing.T, c client.Client, name string, sels ...sv1alpha1.Selector) *sv1alpha1.ServerlessProfile {
	t.Helper()
	p := &sv1alpha1.ServerlessProfile{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: sv1alpha1.ServerlessProfileSpec{Selectors: sels}}
	if err := c.Create(context.Background(), p); err != nil {
		t.Fatalf("creating ServerlessProfile %s: %v", name, err)
	}
	t.Cleanup(func() { deleteProfile(t, c, name) })
	waitFor(t, "ServerlessProfile "+name+" Active", 30*time.Second, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Name: name}, p); err != nil {
			return false, err
		}
		return p.Status.Phase == sv1alpha1.PhaseActive, fmt.Errorf("phase %q", p.Status.Phase)
	})
	return p
}

// deleteProfile deletes a profile and waits until it is gone.
func deleteProfile(t *testing.T, c client.Client, name string) {
	t.Helper()
	p := &sv1alpha1.ServerlessProfile{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Delete(context.Background(), p); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting ServerlessProfile %s: %v", name, err)
		return
	}
	waitFor(t, "ServerlessProfile "+name+" gone", 30*time.Second, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKey{Name: name}, p)
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, fmt.Errorf("phase %q, finalizers %v, err %w", p.Status.Phase, p.Finalizers, err)
	})
}

// parkedPod is a pod that needs not run: its image is a name the embedded registry does not
// hold.
func parkedPod(env *testenv.Env, name string, labels map[string]string, c corev1.Container) *corev1.Pod {
	c.Name, c.Image = "app", env.RegistryHost+"/serverless-profile-test/none:latest"
	pod := podWith(name, c)
	pod.Labels = labels
	return pod
}

func createdPod(t *testing.T, env *testenv.Env, ns string, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	got, err := env.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s: %v", pod.Name, err)
	}
	return got
}

func wantServerless(t *testing.T, pod *corev1.Pod, profile, capacity, storage string) {
	t.Helper()
	if pod.Spec.SchedulerName != sv1alpha1.SchedulerName || pod.Labels[sv1alpha1.ProfileLabel] != profile ||
		pod.Annotations[sv1alpha1.CapacityProvisionedAnnotation] != capacity || pod.Annotations[sv1alpha1.EphemeralStorageProvisionedAnnotation] != storage {
		t.Errorf("pod %s: scheduler %q, profile %q, capacity %q, storage %q; want %s, %s, %s, %s", pod.Name, pod.Spec.SchedulerName,
			pod.Labels[sv1alpha1.ProfileLabel], pod.Annotations[sv1alpha1.CapacityProvisionedAnnotation],
			pod.Annotations[sv1alpha1.EphemeralStorageProvisionedAnnotation], sv1alpha1.SchedulerName, profile, capacity, storage)
	}
}

func wantNotServerless(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	_, labelled := pod.Labels[sv1alpha1.ProfileLabel]
	_, annotated := pod.Annotations[sv1alpha1.CapacityProvisionedAnnotation]
	if pod.Spec.SchedulerName == sv1alpha1.SchedulerName || labelled || annotated {
		t.Errorf("pod %s was made serverless: scheduler %q, labels %v, annotations %v", pod.Name, pod.Spec.SchedulerName, pod.Labels, pod.Annotations)
	}
}

// TestServerlessProfileSelectsPods: a profile with a namespace and label selector marks the
// pods it selects (scheduler, profile label, size), sized from config-serverless as it is now;
// a pod it does not select is untouched; a second matching profile with an earlier name
// wins.
func TestServerlessProfileSelectsPods(t *testing.T) {
	env := testenv.Get(t)
	c := profileClient(t, env)
	ns := newNamespace(t, env.Client)
	suffix := ns[len(ns)-5:]
	web := createProfile(t, c, "web-"+suffix, sv1alpha1.Selector{Namespace: ns, Labels: map[string]string{"app": "w?b"}})
	if want := ns + " app=w?b"; web.Status.Selectors != want || !slices.Contains(web.Finalizers, "serverless.gantry.dev/stop-pods") {
		t.Errorf("status.selectors %q (want %q), finalizers %v", web.Status.Selectors, want, web.Finalizers)
	}

	// `kubectl get sp` finds the resource by its short name in discovery.
	resources, err := env.Client.Discovery().ServerResourcesForGroupVersion(sv1alpha1.SchemeGroupVersion.String())
	if err != nil {
		t.Fatalf("discovery of %s: %v", sv1alpha1.SchemeGroupVersion, err)
	}
	found := false
	for _, r := range resources.APIResources {
		found = found || (r.Name == "serverlessprofiles" && !r.Namespaced && slices.Contains(r.ShortNames, "sp"))
	}
	if !found {
		t.Errorf("discovery has no cluster-scoped serverlessprofiles with short name sp: %+v", resources.APIResources)
	}

	small := createdPod(t, env, ns, parkedPod(env, "small", map[string]string{"app": "web"}, corev1.Container{}))
	wantServerless(t, small, web.Name, "0.25vCPU 0.5GB", "20Gi")
	big := createdPod(t, env, ns, parkedPod(env, "big", map[string]string{"app": "web"}, corev1.Container{Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourceEphemeralStorage: resource.MustParse("50Gi")},
	}}))
	wantServerless(t, big, web.Name, "2vCPU 9GB", "60Gi")
	other := parkedPod(env, "other", map[string]string{"app": "api"}, corev1.Container{})
	other.Annotations = map[string]string{sv1alpha1.CapacityProvisionedAnnotation: "16vCPU 120GB", "kept": "yes"}
	other = createdPod(t, env, ns, other)
	wantNotServerless(t, other)
	if other.Annotations["kept"] != "yes" {
		t.Errorf("pod other lost its own annotation: %v", other.Annotations)
	}

	// An earlier name wins; a pod naming its profile gets it.
	first := createProfile(t, c, "a-"+suffix, sv1alpha1.Selector{Namespace: ns[:len(ns)-2] + "*"})
	wantServerless(t, createdPod(t, env, ns, parkedPod(env, "second", map[string]string{"app": "web"}, corev1.Container{})), first.Name, "0.25vCPU 0.5GB", "20Gi")
	wantServerless(t, createdPod(t, env, ns, parkedPod(env, "named", map[string]string{"app": "web", sv1alpha1.ProfileLabel: web.Name}, corev1.Container{})),
		web.Name, "0.25vCPU 0.5GB", "20Gi")
	// The pod created before the earlier profile keeps its profile.
	if p, err := env.Client.CoreV1().Pods(ns).Get(context.Background(), "small", metav1.GetOptions{}); err != nil || p.Labels[sv1alpha1.ProfileLabel] != web.Name {
		t.Errorf("pod small moved: %v, %v", p.Labels, err)
	}

	// config-serverless applies without a restart, and a bad value is refused naming the key.
	if err := setConfig(t, env, config.ServerlessConfigName, map[string]string{"menu": "0.1: 0.375; 0.5: 0.5-1/0.25", "ephemeral-storage-default": "1Gi"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a pod sized by the small menu", 30*time.Second, func(ctx context.Context) (bool, error) {
		name := fmt.Sprintf("tiny-%d", time.Now().UnixNano()%1e6)
		p, err := env.Client.CoreV1().Pods(ns).Create(ctx, parkedPod(env, name, map[string]string{"app": "web"}, corev1.Container{}), metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		got := p.Annotations[sv1alpha1.CapacityProvisionedAnnotation] + " " + p.Annotations[sv1alpha1.EphemeralStorageProvisionedAnnotation]
		return got == "0.1vCPU 0.375GB 1Gi", fmt.Errorf("sized %q", got)
	})
	err = setConfig(t, env, config.ServerlessConfigName, map[string]string{"memory-overhead": "a lot"})
	if err == nil || !strings.Contains(err.Error(), "memory-overhead") {
		t.Errorf("a bad memory-overhead: %v", err)
	}
}

// TestServerlessProfileRefusals: a privileged pod and a hostPort pod a profile selects are
// refused naming the field (and a Deployment's ReplicaSet says so in its FailedCreate event),
// and so is a pod too big for any size;
// a profile's spec cannot change; a sixth selector and an 11th profile are refused.
func TestServerlessProfileRefusals(t *testing.T) {
	env := testenv.Get(t)
	c := profileClient(t, env)
	ctx := context.Background()
	ns := newNamespace(t, env.Client)
	suffix := ns[len(ns)-5:]
	p := createProfile(t, c, "refusals-"+suffix, sv1alpha1.Selector{Namespace: ns})

	privileged := parkedPod(env, "privileged", nil, corev1.Container{SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}})
	_, err := env.Client.CoreV1().Pods(ns).Create(ctx, privileged, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "spec.containers[0].securityContext.privileged") || !strings.Contains(err.Error(), p.Name) {
		t.Errorf("privileged pod: %v", err)
	}
	hostPort := parkedPod(env, "hostport", nil, corev1.Container{Ports: []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 18080}}})
	_, err = env.Client.CoreV1().Pods(ns).Create(ctx, hostPort, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "spec.containers[0].ports[0].hostPort") {
		t.Errorf("hostPort pod: %v", err)
	}
	huge := parkedPod(env, "huge", nil, corev1.Container{Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32")}}})
	_, err = env.Client.CoreV1().Pods(ns).Create(ctx, huge, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "fit no serverless size") {
		t.Errorf("a pod too big for any size: %v", err)
	}

	// A Deployment's refused pod: the ReplicaSet's FailedCreate event carries the refusal.
	// (A privileged template is refused by the API server itself: gantry server runs it
	// without --allow-privileged.)
	tmpl := parkedPod(env, "", map[string]string{"app": "hostport"}, corev1.Container{Ports: []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 18081}}})
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hostport", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels}, Spec: tmpl.Spec},
		},
	}
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ReplicaSet's FailedCreate event", 60*time.Second, func(ctx context.Context) (bool, error) {
		evs, err := env.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Reason == "FailedCreate" && e.InvolvedObject.Kind == "ReplicaSet" && strings.Contains(e.Message, "spec.containers[0].ports[0].hostPort") {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d events, none a FailedCreate naming the hostPort", len(evs.Items))
	})

	// The spec is immutable.
	changed := p.DeepCopy()
	changed.Spec.Selectors[0].Labels = map[string]string{"app": "web"}
	if err := c.Update(ctx, changed); err == nil || !strings.Contains(err.Error(), "is immutable: create a new ServerlessProfile") {
		t.Errorf("updating the spec: %v", err)
	}

	// A sixth selector.
	six := &sv1alpha1.ServerlessProfile{ObjectMeta: metav1.ObjectMeta{Name: "six-" + suffix}}
	for i := range 6 {
		six.Spec.Selectors = append(six.Spec.Selectors, sv1alpha1.Selector{Namespace: fmt.Sprintf("ns%d", i)})
	}
	if err := c.Create(ctx, six); err == nil || !strings.Contains(err.Error(), "spec.selectors[5]") {
		t.Errorf("a sixth selector: %v", err)
		_ = c.Delete(ctx, six)
	}

	// The 11th profile.
	list := &sv1alpha1.ServerlessProfileList{}
	if err := c.List(ctx, list); err != nil {
		t.Fatal(err)
	}
	for i := len(list.Items); i < sv1alpha1.MaxProfiles; i++ {
		createProfile(t, c, fmt.Sprintf("quota-%d-%s", i, suffix), sv1alpha1.Selector{Namespace: "quota-nowhere"})
	}
	eleventh := &sv1alpha1.ServerlessProfile{ObjectMeta: metav1.ObjectMeta{Name: "eleventh-" + suffix},
		Spec: sv1alpha1.ServerlessProfileSpec{Selectors: []sv1alpha1.Selector{{Namespace: "quota-nowhere"}}}}
	if err := c.Create(ctx, eleventh); err == nil || !strings.Contains(err.Error(), "at most 10 ServerlessProfiles") {
		t.Errorf("an 11th profile: %v", err)
		_ = c.Delete(ctx, eleventh)
	}
}

// TestServerlessProfileDeletionStopsPods: deleting a profile deletes the pods it selected; a
// Deployment's pod comes back, now not serverless.
func TestServerlessProfileDeletionStopsPods(t *testing.T) {
	env := testenv.Get(t)
	c := profileClient(t, env)
	ctx := context.Background()
	ns := newNamespace(t, env.Client)
	suffix := ns[len(ns)-5:]
	p := createProfile(t, c, "deleted-"+suffix, sv1alpha1.Selector{Namespace: ns, Labels: map[string]string{"app": "web"}})

	tmpl := parkedPod(env, "", map[string]string{"app": "web"}, corev1.Container{})
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels}, Spec: tmpl.Spec},
		},
	}
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var selected corev1.Pod
	waitFor(t, "the Deployment's serverless pod", 60*time.Second, func(ctx context.Context) (bool, error) {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		if len(pods.Items) != 1 {
			return false, fmt.Errorf("%d pods", len(pods.Items))
		}
		selected = pods.Items[0]
		return true, nil
	})
	wantServerless(t, &selected, p.Name, "0.25vCPU 0.5GB", "20Gi")

	deleteProfile(t, c, p.Name)
	waitFor(t, "the Deployment's pod back, not serverless", 60*time.Second, func(ctx context.Context) (bool, error) {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		var fresh []corev1.Pod
		for _, pod := range pods.Items {
			if pod.UID == selected.UID {
				if pod.DeletionTimestamp == nil {
					return false, fmt.Errorf("pod %s is not being deleted", pod.Name)
				}
				continue
			}
			fresh = append(fresh, pod)
		}
		if len(fresh) != 1 {
			return false, fmt.Errorf("%d new pods", len(fresh))
		}
		wantNotServerless(t, &fresh[0])
		return true, nil
	})
}
