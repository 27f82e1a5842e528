package node

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestObjectCacheReadsByNameAndKeepsWhatItFound(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	clk := clocktesting.NewFakeClock(time.Now())
	c := newObjectCache(clk, configMapGetter(cs))
	gets := func() int { return len(cs.Actions()) }

	if _, err := c.read("ns", "cfg"); !apierrors.IsNotFound(err) {
		t.Fatalf("a missing ConfigMap: err = %v, want NotFound", err)
	}
	// A miss is not kept: the ConfigMap created next is seen at once.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg"}, Data: map[string]string{"k": "1"}}
	if _, err := cs.CoreV1().ConfigMaps("ns").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := c.read("ns", "cfg")
	if err != nil || got.Data["k"] != "1" {
		t.Fatalf("read = %v, %v", got, err)
	}
	// What was found is kept objectTTL, then read again.
	cm.Data["k"] = "2"
	if _, err := cs.CoreV1().ConfigMaps("ns").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := gets()
	if got, _ := c.read("ns", "cfg"); got.Data["k"] != "1" || gets() != before {
		t.Errorf("within the TTL: k = %s after %d reads, want the kept 1 and no read", got.Data["k"], gets()-before)
	}
	clk.Step(objectTTL)
	if got, _ := c.read("ns", "cfg"); got.Data["k"] != "2" {
		t.Errorf("after the TTL: k = %s, want 2", got.Data["k"])
	}
	// Never a list: a node may not list ConfigMaps.
	for _, a := range cs.Actions() {
		if a.GetVerb() == "list" || a.GetVerb() == "watch" {
			t.Errorf("the cache asked to %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}
