package v1alpha1

import "testing"

func TestCapacityRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		c    Capacity
		want string
	}{
		{Capacity{250, 512}, "0.25vCPU 0.5GB"},
		{Capacity{500, 1024}, "0.5vCPU 1GB"},
		{Capacity{2000, 9 * 1024}, "2vCPU 9GB"},
		{Capacity{16000, 120 * 1024}, "16vCPU 120GB"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.c, got, tc.want)
		}
		back, err := ParseCapacity(tc.want)
		if err != nil || back != tc.c {
			t.Errorf("ParseCapacity(%q) = %+v, %v; want %+v", tc.want, back, err, tc.c)
		}
	}
}

func TestParseCapacityRefuses(t *testing.T) {
	for _, s := range []string{"", "1vCPU", "1 2GB", "xvCPU 1GB", "1vCPU -1GB", "0vCPU 1GB", "1vCPU 0GB", "1vCPU 2G"} {
		if _, err := ParseCapacity(s); err == nil {
			t.Errorf("ParseCapacity(%q) succeeded", s)
		}
	}
}
