package configstore

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/gantry-run/gantry/internal/poll"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, 10*time.Second, func(context.Context) (bool, error) { return cond(), nil })
}

func TestStoreFollowsTheConfigMaps(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset()
	if err := Ensure(ctx, client); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(ctx, client); err != nil {
		t.Fatalf("Ensure is not idempotent: %v", err)
	}
	s := New(client, nil)
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	if got := s.Load().Defaults.RevisionTimeoutSeconds; got != 300 {
		t.Fatalf("timeout with only _example = %d, want the default 300", got)
	}

	cms := client.CoreV1().ConfigMaps(config.Namespace)
	set := func(name string, data map[string]string) {
		t.Helper()
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data = data
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	set(config.DefaultsConfigName, map[string]string{"revision-timeout-seconds": "123"})
	eventually(t, "the new timeout", func() bool { return s.Load().Defaults.RevisionTimeoutSeconds == 123 })

	set(config.FeaturesConfigName, map[string]string{"kubernetes.podspec-affinity": "enabled"})
	eventually(t, "the feature flag", func() bool { return s.Load().Features.PodSpecAffinity })
	if s.Load().Defaults.RevisionTimeoutSeconds != 123 {
		t.Error("changing one ConfigMap reset another")
	}

	// A malformed value (the webhook refuses it; a cluster without it stores it) keeps the
	// values in force.
	set(config.DefaultsConfigName, map[string]string{"revision-timeout-seconds": "soon"})
	set(config.AutoscalerConfigName, map[string]string{"stable-window": "90s"})
	eventually(t, "the autoscaler change", func() bool { return s.Load().Autoscaler.StableWindow == 90*time.Second })
	if got := s.Load().Defaults.RevisionTimeoutSeconds; got != 123 {
		t.Errorf("timeout after a malformed value = %d, want 123 kept", got)
	}

	if err := cms.Delete(ctx, config.AutoscalerConfigName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "defaults after delete", func() bool { return s.Load().Autoscaler.StableWindow == time.Minute })

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Start after cancel = %v", err)
	}
}

func TestQueueSidecarImageOption(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset()
	if err := Ensure(ctx, client); err != nil {
		t.Fatal(err)
	}
	s := New(client, nil)
	s.SetQueueSidecarImage("ghcr.io/example/queue:v1")
	go func() { _ = s.Start(ctx) }()
	<-s.Ready()
	if got := s.Load().Deployment.QueueSidecarImage; got != "ghcr.io/example/queue:v1" {
		t.Fatalf("queue image = %q, want the option's", got)
	}
	cms := client.CoreV1().ConfigMaps(config.Namespace)
	cm, err := cms.Get(ctx, config.DeploymentConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{"queue-sidecar-image": "registry.local/queue:v2"}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "config-deployment's image to win", func() bool {
		return s.Load().Deployment.QueueSidecarImage == "registry.local/queue:v2"
	})
}

func TestEnsureKeepsExisting(t *testing.T) {
	ctx := context.Background()
	existing := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: config.DefaultsConfigName, Namespace: config.Namespace},
		Data:       map[string]string{"revision-timeout-seconds": "42"},
	}
	client := fake.NewClientset(existing)
	if err := Ensure(ctx, client); err != nil {
		t.Fatal(err)
	}
	got, err := client.CoreV1().ConfigMaps(config.Namespace).Get(ctx, config.DefaultsConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Data["revision-timeout-seconds"] != "42" || got.Data[config.ExampleKey] != "" {
		t.Errorf("Ensure changed an existing ConfigMap: %v", got.Data)
	}
	for _, name := range config.Names() {
		if _, err := client.CoreV1().ConfigMaps(config.Namespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
