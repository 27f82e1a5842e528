package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestLargestPrime(t *testing.T) {
	for _, tc := range []struct {
		n, want int
		ok      bool
	}{{0, 0, false}, {1, 0, false}, {2, 2, true}, {10, 7, true}, {13, 13, true}, {100, 97, true}, {10000, 9973, true}} {
		got, ok := largestPrime(tc.n)
		if got != tc.want || ok != tc.ok {
			t.Errorf("largestPrime(%d) = %d, %v; want %d, %v", tc.n, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHandle(t *testing.T) {
	for _, tc := range []struct {
		query    string
		code     int
		contains []string
	}{
		{"", 200, nil},
		{"?sleep=20", 200, []string{"Slept for"}},
		{"?prime=100", 200, []string{"is 97."}},
		{"?bloat=2", 200, []string{"Allocated 2 MB."}},
		{"?sleep=1&prime=10&bloat=1", 200, []string{"Slept", "is 7.", "Allocated 1 MB."}},
		{"?sleep=abc", 400, []string{"sleep: must be an integer"}},
		{"?prime=-1", 400, []string{"prime: must be between"}},
		{"?bloat=99999999", 400, []string{"bloat: must be between"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			rec := httptest.NewRecorder()
			handle(rec, httptest.NewRequest(http.MethodGet, "/"+tc.query, nil))
			if rec.Code != tc.code {
				t.Fatalf("code = %d, want %d (body %q)", rec.Code, tc.code, rec.Body.String())
			}
			for _, s := range tc.contains {
				if !strings.Contains(rec.Body.String(), s) {
					t.Errorf("body %q does not contain %q", rec.Body.String(), s)
				}
			}
		})
	}
}
