package apis

import (
	"encoding/json"
	"fmt"
	"net/url"
)

// URL is a net/url.URL that marshals to and from a JSON string, as Knative's
// status.url and traffic[].url fields are.
//
// +kubebuilder:object:generate=false
// +kubebuilder:validation:Type=string
type URL url.URL

// ParseURL parses s; the empty string gives a nil URL.
func ParseURL(s string) (*URL, error) {
	if s == "" {
		return nil, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("parsing url %q: %w", s, err)
	}
	return (*URL)(u), nil
}

// HTTP returns http://host.
func HTTP(host string) *URL { return &URL{Scheme: "http", Host: host} }

// HTTPS returns https://host.
func HTTPS(host string) *URL { return &URL{Scheme: "https", Host: host} }

// URL returns the value as a *url.URL.
func (u *URL) URL() *url.URL {
	if u == nil {
		return nil
	}
	return (*url.URL)(u)
}

// String returns the URL as text, or "" for nil.
func (u *URL) String() string {
	if u == nil {
		return ""
	}
	return u.URL().String()
}

// IsEmpty reports whether u is nil or the zero URL.
func (u *URL) IsEmpty() bool {
	return u == nil || *u == URL{}
}

// MarshalJSON writes the URL as a string.
func (u URL) MarshalJSON() ([]byte, error) {
	return json.Marshal(u.String())
}

// UnmarshalJSON reads a URL from a string.
func (u *URL) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("url must be a string: %w", err)
	}
	parsed, err := ParseURL(s)
	if err != nil {
		return err
	}
	if parsed == nil {
		*u = URL{}
		return nil
	}
	*u = *parsed
	return nil
}

// DeepCopyInto copies u into out, including its user information.
func (u *URL) DeepCopyInto(out *URL) {
	*out = *u
	if u.User != nil {
		user := *u.User
		out.User = &user
	}
}

// DeepCopy returns a copy of u.
func (u *URL) DeepCopy() *URL {
	if u == nil {
		return nil
	}
	out := new(URL)
	u.DeepCopyInto(out)
	return out
}
