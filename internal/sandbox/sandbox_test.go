package sandbox

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestHostReachesPod(t *testing.T) {
	m := newTestManager(t, testOptions(t))
	layer := testLayer(t)
	ctx := context.Background()

	var took []time.Duration
	for i := range 5 {
		id := fmt.Sprintf("reach-%d", i)
		t.Cleanup(func() { m.RemoveSandbox(ctx, id) }) //nolint:errcheck // the test removes it; this is for failures
		start := time.Now()
		sb, err := m.CreateSandbox(ctx, PodSpec{ID: id, Namespace: "default", Name: "hello"})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.StartContainer(ctx, id, ContainerSpec{Name: "user", Layers: []string{layer}, Args: []string{bin("hello")}}); err != nil {
			t.Fatal(err)
		}
		body, err := poll(fmt.Sprintf("http://%s:8080/", sb.IP), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(start))
		if body != "Hello World!\n" {
			t.Errorf("GET / = %q, want Hello World!", body)
		}
		if err := m.RemoveSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(took)
	t.Logf("CreateSandbox+StartContainer until the hello server answers: median %v (runs %v)", took[len(took)/2], took)
}
