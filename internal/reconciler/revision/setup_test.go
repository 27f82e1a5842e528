package revision

import (
	"testing"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/gantry-run/gantry/internal/reconciler/reconcilertest"
)

func TestSetupWithManager(t *testing.T) {
	newManager := func(t *testing.T) ctrl.Manager {
		// Nothing listens there: setting up reads nothing from the API server.
		mgr, err := ctrl.NewManager(&rest.Config{Host: "http://127.0.0.1:1"}, ctrl.Options{
			Scheme:  reconcilertest.Scheme(),
			Metrics: metricsserver.Options{BindAddress: "0"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return mgr
	}
	t.Run("without a resolver: refused", func(t *testing.T) {
		if err := (&Reconciler{}).SetupWithManager(newManager(t)); err == nil {
			t.Error("SetupWithManager() = nil, want a refusal naming the missing resolver")
		}
	})
	t.Run("with one: the resolver is made", func(t *testing.T) {
		mgr := newManager(t)
		r := &Reconciler{Client: mgr.GetClient(), Recorder: reconcilertest.NewRecorder(), Resolver: &fakeResolver{}}
		if err := r.SetupWithManager(mgr); err != nil {
			t.Fatal(err)
		}
		if r.digests == nil {
			t.Error("no digest resolver after SetupWithManager")
		}
	})
}
