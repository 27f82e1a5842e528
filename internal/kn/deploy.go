package kn

import (
	"fmt"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// maxServiceName leaves room in a DNS label for the revision suffix (-00001) Knative adds.
const maxServiceName = 63 - len("-00001")

// ServiceNameFor is the Service name `gantry deploy DIR` uses: the directory's base name,
// lowercased, with every character a DNS label does not allow turned into "-".
func ServiceNameFor(dir string) (string, error) {
	base := filepath.Base(filepath.Clean(dir))
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if err := ValidateServiceName(name); err != nil {
		return "", fmt.Errorf("%s: no service name follows from the directory's name (give one with --name): %w", dir, err)
	}
	return name, nil
}

// ValidateServiceName checks name as Knative does a Service's.
func ValidateServiceName(name string) error {
	if errs := validation.IsDNS1035Label(name); len(errs) > 0 {
		return fmt.Errorf("service name %q: want lowercase letters, digits and '-', starting with a letter", name)
	}
	if len(name) > maxServiceName {
		return fmt.Errorf("service name %q: longer than %d characters", name, maxServiceName)
	}
	return nil
}

// Unchanged reports whether svc already serves the image digest a deploy just pushed: its
// template names that digest and its latest ready revision runs it, and it is Ready.
func Unchanged(svc *servingv1.Service, rev *servingv1.Revision, digest string) bool {
	if svc == nil || rev == nil || len(svc.Spec.Template.Spec.Containers) == 0 {
		return false
	}
	if !strings.HasSuffix(svc.Spec.Template.Spec.Containers[0].Image, "@"+digest) {
		return false
	}
	if svc.Status.ObservedGeneration < svc.Generation || !conditionIsTrue(&svc.Status.Status, servingv1.ServiceConditionReady) {
		return false
	}
	for _, cs := range rev.Status.ContainerStatuses {
		if strings.HasSuffix(cs.ImageDigest, "@"+digest) || cs.ImageDigest == digest {
			return true
		}
	}
	return false
}
