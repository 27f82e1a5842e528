package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Defaults are the values of Knative's config-defaults ConfigMap that
// defaulting and validation use.
type Defaults struct {
	// RevisionTimeoutSeconds is the default timeoutSeconds (300).
	RevisionTimeoutSeconds int64
	// MaxRevisionTimeoutSeconds bounds timeoutSeconds (600).
	MaxRevisionTimeoutSeconds int64
	// RevisionResponseStartTimeoutSeconds is the default
	// responseStartTimeoutSeconds; 0 leaves it unset (then the timeout applies).
	RevisionResponseStartTimeoutSeconds int64
	// RevisionIdleTimeoutSeconds is the default idleTimeoutSeconds (0, off).
	RevisionIdleTimeoutSeconds int64
	// ContainerConcurrency is the default containerConcurrency (0, unlimited).
	ContainerConcurrency int64
	// ContainerConcurrencyMaxLimit bounds containerConcurrency (1000).
	ContainerConcurrencyMaxLimit int64
	// UserContainerName is the default name of a single container
	// ("user-container"); several containers get "<name>-<index>".
	UserContainerName string
	// InitContainerName is the default name prefix of init containers.
	InitContainerName string
	// EnableServiceLinks is the default of the pod's enableServiceLinks; nil
	// leaves it unset. Knative defaults it to false.
	EnableServiceLinks *bool
}

// Default values, as Knative ships them.
const (
	DefaultRevisionTimeoutSeconds       int64 = 300
	DefaultMaxRevisionTimeoutSeconds    int64 = 600
	DefaultContainerConcurrency         int64 = 0
	DefaultContainerConcurrencyMaxLimit int64 = 1000
	DefaultUserContainerName                  = "user-container"
	DefaultInitContainerName                  = "init-container"
)

// NewDefaults returns the defaults Knative ships.
func NewDefaults() *Defaults {
	f := false
	return &Defaults{
		RevisionTimeoutSeconds:       DefaultRevisionTimeoutSeconds,
		MaxRevisionTimeoutSeconds:    DefaultMaxRevisionTimeoutSeconds,
		ContainerConcurrency:         DefaultContainerConcurrency,
		ContainerConcurrencyMaxLimit: DefaultContainerConcurrencyMaxLimit,
		UserContainerName:            DefaultUserContainerName,
		InitContainerName:            DefaultInitContainerName,
		EnableServiceLinks:           &f,
	}
}

// NewDefaultsFromMap reads the data of a config-defaults ConfigMap, keeping
// the shipped value for every key that is absent.
func NewDefaultsFromMap(data map[string]string) (*Defaults, error) {
	d := NewDefaults()
	ints := []struct {
		key string
		dst *int64
	}{
		{"revision-timeout-seconds", &d.RevisionTimeoutSeconds},
		{"max-revision-timeout-seconds", &d.MaxRevisionTimeoutSeconds},
		{"revision-response-start-timeout-seconds", &d.RevisionResponseStartTimeoutSeconds},
		{"revision-idle-timeout-seconds", &d.RevisionIdleTimeoutSeconds},
		{"container-concurrency", &d.ContainerConcurrency},
		{"container-concurrency-max-limit", &d.ContainerConcurrencyMaxLimit},
	}
	for _, i := range ints {
		v, ok := data[i.key]
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parsing %s %q: %w", i.key, v, err)
		}
		*i.dst = n
	}
	if v, ok := data["container-name-template"]; ok && strings.TrimSpace(v) != "" {
		d.UserContainerName = strings.TrimSpace(v)
	}
	if v, ok := data["init-container-name-template"]; ok && strings.TrimSpace(v) != "" {
		d.InitContainerName = strings.TrimSpace(v)
	}
	if v, ok := data["enable-service-links"]; ok {
		switch strings.TrimSpace(v) {
		case "true":
			t := true
			d.EnableServiceLinks = &t
		case "false":
			f := false
			d.EnableServiceLinks = &f
		case "default":
			d.EnableServiceLinks = nil
		default:
			return nil, fmt.Errorf("parsing enable-service-links %q: want true, false or default", v)
		}
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Defaults) check() error {
	switch {
	case d.RevisionTimeoutSeconds < 1:
		return fmt.Errorf("revision-timeout-seconds must be at least 1, got %d", d.RevisionTimeoutSeconds)
	case d.MaxRevisionTimeoutSeconds < d.RevisionTimeoutSeconds:
		return fmt.Errorf("max-revision-timeout-seconds %d is less than revision-timeout-seconds %d",
			d.MaxRevisionTimeoutSeconds, d.RevisionTimeoutSeconds)
	case d.RevisionResponseStartTimeoutSeconds < 0 || d.RevisionResponseStartTimeoutSeconds > d.RevisionTimeoutSeconds:
		return fmt.Errorf("revision-response-start-timeout-seconds must be in [0, %d], got %d",
			d.RevisionTimeoutSeconds, d.RevisionResponseStartTimeoutSeconds)
	case d.RevisionIdleTimeoutSeconds < 0 || d.RevisionIdleTimeoutSeconds > d.RevisionTimeoutSeconds:
		return fmt.Errorf("revision-idle-timeout-seconds must be in [0, %d], got %d",
			d.RevisionTimeoutSeconds, d.RevisionIdleTimeoutSeconds)
	case d.ContainerConcurrencyMaxLimit < 1:
		return fmt.Errorf("container-concurrency-max-limit must be at least 1, got %d", d.ContainerConcurrencyMaxLimit)
	case d.ContainerConcurrency < 0 || d.ContainerConcurrency > d.ContainerConcurrencyMaxLimit:
		return fmt.Errorf("container-concurrency must be in [0, %d], got %d",
			d.ContainerConcurrencyMaxLimit, d.ContainerConcurrency)
	}
	return nil
}

// ContainerName returns the default name of the container at index of a pod
// with count containers.
func (d *Defaults) ContainerName(index, count int) string {
	if count <= 1 {
		return d.UserContainerName
	}
	return fmt.Sprintf("%s-%d", d.UserContainerName, index)
}
