// Command hello is Gantry's smallest test image: it answers every request with
// "Hello World!", or "Hello $TARGET!" when TARGET is set, like Knative's helloworld-go.
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/gantry-run/gantry/test/images/internal/serve"
)

func main() {
	serve.Main("hello", newHandler(os.Getenv("TARGET")))
}

func newHandler(target string) http.Handler {
	if target == "" {
		target = "World"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Hello %s!\n", target)
	})
}
