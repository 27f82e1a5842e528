package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHello(t *testing.T) {
	for _, tc := range []struct{ target, want string }{
		{"", "Hello World!\n"},
		{"Gantry", "Hello Gantry!\n"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			rec := httptest.NewRecorder()
			newHandler(tc.target).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			if rec.Code != 200 || rec.Body.String() != tc.want {
				t.Errorf("got %d %q, want 200 %q", rec.Code, rec.Body.String(), tc.want)
			}
		})
	}
}
