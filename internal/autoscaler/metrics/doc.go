// Package metrics owns what the KPA knows of a revision's load: per-second buckets averaged
// over the stable and the panic window, for concurrency and requests per second; a Collector
// that keeps those windows for every revision and takes the queue-proxies' and the activator's
// stats; and a Scraper that asks a sample of a revision's pods for their stats through an
// injected fetch function, so it runs in tests without a network.
package metrics
