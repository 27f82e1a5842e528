package apis

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestURLJSON(t *testing.T) {
	type holder struct {
		URL *URL `json:"url,omitempty"`
	}
	in := `{"url":"http://hello.default.localhost:8080/x?y=1"}`
	var h holder
	if err := json.Unmarshal([]byte(in), &h); err != nil {
		t.Fatal(err)
	}
	if got, want := h.URL.Host, "hello.default.localhost:8080"; got != want {
		t.Errorf("host = %q, want %q", got, want)
	}
	out, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, string(out)); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"url":42}`), &h); err == nil {
		t.Error("a number must not decode as a URL")
	}
	if err := json.Unmarshal([]byte(`{"url":"http://[::1"}`), &h); err == nil {
		t.Error("an unparsable URL must fail")
	}
}

func TestURLHelpers(t *testing.T) {
	if got := HTTP("a.b").String(); got != "http://a.b" {
		t.Errorf("HTTP = %q", got)
	}
	if got := HTTPS("a.b").String(); got != "https://a.b" {
		t.Errorf("HTTPS = %q", got)
	}
	var nilURL *URL
	if nilURL.String() != "" || !nilURL.IsEmpty() || nilURL.URL() != nil || nilURL.DeepCopy() != nil {
		t.Error("nil URL helpers")
	}
	u, err := ParseURL("https://user:pw@x.y/z")
	if err != nil {
		t.Fatal(err)
	}
	c := u.DeepCopy()
	if c.User == u.User || c.String() != u.String() {
		t.Error("DeepCopy must copy user info")
	}
	if u, err := ParseURL(""); u != nil || err != nil {
		t.Errorf("ParseURL(\"\") = %v, %v", u, err)
	}
}
