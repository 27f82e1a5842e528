package forwarded

import "testing"

func TestValues(t *testing.T) {
	for _, c := range []struct {
		remote, host       string
		priorXFF, priorFwd []string
		xff, fwd           string
	}{
		{"127.0.0.1:4000", "a.test", nil, nil, "127.0.0.1", "for=127.0.0.1;host=a.test;proto=http"},
		{"127.0.0.1:4000", "a.test:8080", []string{"192.0.2.1"}, []string{"for=192.0.2.1"},
			"192.0.2.1, 127.0.0.1", `for=192.0.2.1, for=127.0.0.1;host="a.test:8080";proto=http`},
		{"[::1]:4000", "a.test", nil, nil, "::1", `for="[::1]";host=a.test;proto=http`},
	} {
		xff, fwd := Values(c.remote, c.host, c.priorXFF, c.priorFwd)
		if xff != c.xff || fwd != c.fwd {
			t.Errorf("Values(%q, %q, %q, %q) = %q, %q; want %q, %q", c.remote, c.host, c.priorXFF, c.priorFwd, xff, fwd, c.xff, c.fwd)
		}
	}
}
