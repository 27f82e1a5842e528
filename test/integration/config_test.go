package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// setConfig merges data into one of Gantry's ConfigMaps and restores its data when the test
// ends.
func setConfig(t *testing.T, env *testenv.Env, name string, data map[string]string) error {
	t.Helper()
	ctx := context.Background()
	cms := env.Client.CoreV1().ConfigMaps(config.Namespace)
	cm, err := cms.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	before := cm.DeepCopy().Data
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	for k, v := range data {
		cm.Data[k] = v
	}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return err
	}
	t.Cleanup(func() {
		cur, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("restoring %s: %v", name, err)
			return
		}
		cur.Data = before
		if _, err := cms.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Errorf("restoring %s: %v", name, err)
		}
	})
	return nil
}

func TestConfigMapsExistWithKnativeKeys(t *testing.T) {
	env := testenv.Get(t)
	for _, name := range config.Names() {
		cm, err := env.Client.CoreV1().ConfigMaps(config.Namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !strings.Contains(cm.Data[config.ExampleKey], ":") {
			t.Errorf("%s has no _example block: %v", name, cm.Data)
		}
	}
}

func TestMalformedConfigIsRefusedNamingTheKey(t *testing.T) {
	env := testenv.Get(t)
	for _, tc := range []struct {
		cm, key, value, want string
	}{
		{config.DefaultsConfigName, "revision-timeout-seconds", "soon", `config-defaults: revision-timeout-seconds: "soon" is not an integer`},
		{config.FeaturesConfigName, "kubernetes.podspec-affinity", "maybe", "config-features: kubernetes.podspec-affinity"},
		{config.AutoscalerConfigName, "stable-window", "1s", "config-autoscaler: stable-window"},
		{config.NetworkConfigName, "domain-template", "{{.Nope}}", "config-network: domain-template"},
		{config.DeploymentConfigName, "progress-deadline", "soon", "config-deployment: progress-deadline"},
		{config.DefaultsConfigName, "revision-timout-seconds", "5", "revision-timout-seconds: unknown key"},
	} {
		err := setConfig(t, env, tc.cm, map[string]string{tc.key: tc.value})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s=%q: error %v, want it to contain %q", tc.cm, tc.key, tc.value, err, tc.want)
		}
	}
	// Nothing malformed was stored.
	cm, err := env.Client.CoreV1().ConfigMaps(config.Namespace).Get(context.Background(), config.DefaultsConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cm.Data["revision-timeout-seconds"]; ok {
		t.Errorf("a refused value was stored: %v", cm.Data)
	}
}

// TestConfigAppliesWithoutRestart: a new default timeout and a feature flag take effect for
// the next Service, with the server running.
func TestConfigAppliesWithoutRestart(t *testing.T) {
	env := testenv.Get(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()

	// Before: nodeSelector is refused.
	selecting := helloService(env, t, ns, "selecting")
	selecting.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
	if err := env.Ctrl.Create(ctx, selecting.DeepCopy()); err == nil || !strings.Contains(err.Error(), "nodeSelector") {
		t.Fatalf("nodeSelector with the flag off: error %v, want a refusal naming nodeSelector", err)
	}

	if err := setConfig(t, env, config.DefaultsConfigName, map[string]string{"revision-timeout-seconds": "123"}); err != nil {
		t.Fatal(err)
	}
	if err := setConfig(t, env, config.FeaturesConfigName, map[string]string{"kubernetes.podspec-nodeselector": "enabled"}); err != nil {
		t.Fatal(err)
	}
	// The store follows the ConfigMaps by watch; allow it a moment.
	waitFor(t, "the new configuration to admit nodeSelector", 10*time.Second, func(ctx context.Context) (bool, error) {
		err := env.Ctrl.Create(ctx, selecting.DeepCopy())
		return err == nil, nil
	})
	svc := helloService(env, t, ns, "timeout")
	if err := env.Ctrl.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	var rev servingv1.Revision
	waitFor(t, "the Revision", 30*time.Second, func(ctx context.Context) (bool, error) {
		return exists(ctx, env, ns, "timeout-00001", &rev)
	})
	if got := ptr.Deref(rev.Spec.TimeoutSeconds, 0); got != 123 {
		t.Errorf("timeoutSeconds of the next Revision = %d, want 123 from config-defaults", got)
	}
	var sel servingv1.Revision
	waitFor(t, "the Revision with a nodeSelector", 30*time.Second, func(ctx context.Context) (bool, error) {
		return exists(ctx, env, ns, "selecting-00001", &sel)
	})
	if sel.Spec.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("nodeSelector of the Revision = %v", sel.Spec.NodeSelector)
	}
}
