package config

import (
	"bytes"
	"fmt"
	"text/template"
)

// Network are the values of Knative's config-network ConfigMap that shape Route URLs.
type Network struct {
	// DomainTemplate makes a Route's host from .Name, .Namespace, .Domain and .Annotations.
	DomainTemplate string
	// TagTemplate makes a tag's name part from .Tag and .Name; it replaces .Name in the
	// domain template.
	TagTemplate string
}

// Knative's default templates.
const (
	DefaultDomainTemplate = "{{.Name}}.{{.Namespace}}.{{.Domain}}"
	DefaultTagTemplate    = "{{.Tag}}-{{.Name}}"
)

// NewNetwork returns the defaults Knative ships.
func NewNetwork() *Network {
	return &Network{DomainTemplate: DefaultDomainTemplate, TagTemplate: DefaultTagTemplate}
}

// NewNetworkFromMap reads the data of a config-network ConfigMap. Keys of features Gantry does
// not implement (TLS, other ingress classes, gradual rollout) are accepted only with the value
// that means "off", so nothing set there is silently ignored.
func NewNetworkFromMap(data map[string]string) (*Network, error) {
	n := NewNetwork()
	p := newParser(data)
	p.string("domain-template", &n.DomainTemplate)
	p.string("tag-template", &n.TagTemplate)
	p.only("ingress-class", "gantry.ingress.networking.knative.dev")
	p.only("ingress.class", "gantry.ingress.networking.knative.dev")
	p.only("http-protocol", "Enabled")
	p.only("external-domain-tls", "Disabled")
	p.only("cluster-local-domain-tls", "Disabled")
	p.only("auto-tls", "Disabled")
	p.only("default-external-scheme", "http")
	p.only("rollout-duration", "0", "0s")
	p.only("autocreate-cluster-domain-claims", "false")
	p.only("enable-mesh-pod-addressability", "false")
	p.only("mesh-compatibility-mode", "auto", "disabled")
	if err := p.err(); err != nil {
		return nil, err
	}
	if _, err := n.Host("name", "namespace", "example.com", nil); err != nil {
		return nil, fmt.Errorf("domain-template: %w", err)
	}
	if _, err := n.TagName("tag", "name"); err != nil {
		return nil, fmt.Errorf("tag-template: %w", err)
	}
	return n, nil
}

// Host renders the domain template for a Route called name.
func (n *Network) Host(name, namespace, domain string, annotations map[string]string) (string, error) {
	return render(n.DomainTemplate, struct {
		Name, Namespace, Domain string
		Annotations             map[string]string
	}{name, namespace, domain, annotations})
}

// TagName renders the tag template: the name part of a tag's host.
func (n *Network) TagName(tag, name string) (string, error) {
	return render(n.TagTemplate, struct{ Tag, Name string }{tag, name})
}

func render(text string, data any) (string, error) {
	t, err := template.New("").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("%q is not a template: %w", text, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%q: %w", text, err)
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("%q renders empty", text)
	}
	return b.String(), nil
}
