// Command deploy times `gantry deploy DIR` from the command to the printed URL answering,
// against a running gantry server (GANTRY_DATA_DIR, GANTRY_GATEWAY and GANTRY_REGISTRY as the
// CLI reads them). Each run first deletes the Service, so every deploy creates it anew; the
// Go build cache is warmed by one deploy before the runs. It also times a deploy of
// unchanged source against the running Service.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

func main() {
	gantry := flag.String("gantry", "bin/gantry", "the gantry binary")
	dir := flag.String("dir", "samples/hello", "the program to deploy")
	name := flag.String("name", "hello", "the Service's name (deploy's default for samples/hello)")
	runs := flag.Int("runs", 5, "deploys to time")
	flag.Parse()
	if err := run(*gantry, *dir, *name, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench/deploy:", err)
		os.Exit(1)
	}
}

func run(gantry, dir, name string, runs int) error {
	deploy := func() (time.Duration, error) {
		start := time.Now()
		out, err := exec.Command(gantry, "deploy", dir, "--name", name).Output()
		if err != nil {
			return 0, fmt.Errorf("gantry deploy: %w", err)
		}
		if err := answer(strings.TrimSpace(string(out))); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	remove := func() { _ = exec.Command(gantry, "service", "delete", name).Run() }
	remove()
	if _, err := deploy(); err != nil { // warms the build cache
		return err
	}
	var fresh []time.Duration
	for range runs {
		remove()
		d, err := deploy()
		if err != nil {
			return err
		}
		fresh = append(fresh, d)
	}
	var same []time.Duration
	for range runs {
		d, err := deploy()
		if err != nil {
			return err
		}
		same = append(same, d)
	}
	fmt.Println("| gantry deploy, warm build cache | p50 | min | max |")
	fmt.Println("|---|---|---|---|")
	row("new Service: command → URL answers", fresh)
	row("unchanged source: command → URL answers", same)
	return nil
}

func row(what string, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	ms := func(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
	fmt.Printf("| %s | %s | %s | %s |\n", what, ms(ds[len(ds)/2]), ms(ds[0]), ms(ds[len(ds)-1]))
}

// answer GETs url (a *.localhost name, dialled on loopback) until it answers 200.
func answer(url string) error {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".localhost") {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		var last string
		if err != nil {
			last = err.Error()
		} else {
			last = resp.Status
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within 30s (last: %s)", url, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
