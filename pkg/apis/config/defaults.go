package config

import "fmt"

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
// the shipped value for every key that is absent. A malformed value, an unknown
// key or a value Gantry does not implement is an error naming the key.
func NewDefaultsFromMap(data map[string]string) (*Defaults, error) {
	d := NewDefaults()
	p := newParser(data)
	p.int64("revision-timeout-seconds", &d.RevisionTimeoutSeconds)
	p.int64("max-revision-timeout-seconds", &d.MaxRevisionTimeoutSeconds)
	p.int64("revision-response-start-timeout-seconds", &d.RevisionResponseStartTimeoutSeconds)
	p.int64("revision-idle-timeout-seconds", &d.RevisionIdleTimeoutSeconds)
	p.int64("container-concurrency", &d.ContainerConcurrency)
	p.int64("container-concurrency-max-limit", &d.ContainerConcurrencyMaxLimit)
	p.string("container-name-template", &d.UserContainerName)
	p.string("init-container-name-template", &d.InitContainerName)
	// Knative's keys that Gantry does not implement yet: refused when set, never ignored.
	for _, k := range []string{
		"revision-cpu-request", "revision-memory-request", "revision-ephemeral-storage-request",
		"revision-cpu-limit", "revision-memory-limit", "revision-ephemeral-storage-limit",
	} {
		p.only(k, "")
	}
	p.only("allow-container-concurrency-zero", "true")
	if v, ok := p.value("enable-service-links"); ok {
		switch v {
		case "true":
			t := true
			d.EnableServiceLinks = &t
		case "false":
			f := false
			d.EnableServiceLinks = &f
		case "default":
			d.EnableServiceLinks = nil
		default:
			p.failf("enable-service-links", "%q is not true, false or default", v)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
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
