package standalone

import (
	"context"
	"fmt"

	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gantry-run/gantry/internal/node"
	"github.com/gantry-run/gantry/internal/sandbox"
)

// ensureRuntimeClass creates the RuntimeClass whose pods the serverless node runs on gVisor
// (handler runsc), so the API server's RuntimeClass admission accepts pods that name it. One
// that exists is left as it is.
func ensureRuntimeClass(ctx context.Context, cfg *rest.Config) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	rc := &nodev1.RuntimeClass{
		ObjectMeta: metav1.ObjectMeta{Name: node.GVisorRuntimeClass, Labels: map[string]string{"app.kubernetes.io/managed-by": "gantry"}},
		Handler:    sandbox.RuntimeRunsc,
	}
	if _, err := client.NodeV1().RuntimeClasses().Create(ctx, rc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating RuntimeClass %s: %w", rc.Name, err)
	}
	return nil
}
