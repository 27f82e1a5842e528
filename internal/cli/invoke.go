package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newInvokeCommand() *cobra.Command {
	var conn connFlags
	var gw gatewayFlags
	var tag, data, method, path string
	var headers []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "invoke NAME",
		Short: "Send a request to a Service through the gateway and print the response",
		Long: `Send one HTTP request to the Service NAME (or its tag URL with --tag) through gantry
server's gateway, with the Host its route answers to, and print the response body. A
response that is not 2xx prints its body and exits non-zero. A revision at zero is woken,
as for any request.`,
		Example: `  gantry invoke hello
  gantry invoke hello --tag stable
  gantry invoke echo -d '{"name":"Gantry"}' -H 'Content-Type: application/json'
  gantry invoke echo -d @request.json --path /api`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := conn.connect()
			if err != nil {
				return err
			}
			ctx := ctxOf(cmd)
			svc, err := k.getService(ctx, args[0])
			if err != nil {
				return err
			}
			target := svc.Status.URL
			if tag != "" {
				target = nil
				for _, t := range svc.Status.Traffic {
					if t.Tag == tag {
						target = t.URL
					}
				}
				if target == nil {
					return fmt.Errorf("service %s has no tag %q (gantry service describe %s lists its tags)", svc.Name, tag, svc.Name)
				}
			}
			if target == nil {
				return fmt.Errorf("service %s has no URL yet (gantry service describe %s says why)", svc.Name, svc.Name)
			}
			body, err := requestBody(data, cmd.InOrStdin())
			if err != nil {
				return err
			}
			if method == "" {
				method = http.MethodGet
				if data != "" {
					method = http.MethodPost
				}
			}
			u := &url.URL{Scheme: "http", Host: gw.addr, Path: path}
			req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
			if err != nil {
				return err
			}
			req.Host = target.Host
			for _, h := range headers {
				k, v, ok := strings.Cut(h, ":")
				if !ok || strings.TrimSpace(k) == "" {
					return fmt.Errorf("-H %q: want 'Name: value'", h)
				}
				req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			resp, err := (&http.Client{Timeout: timeout}).Do(req)
			if err != nil {
				return fmt.Errorf("no gateway answers at %s (is gantry server running? --gateway names another): %s", gw.addr, oneLine(err.Error()))
			}
			defer resp.Body.Close()
			if _, err := io.Copy(cmd.OutOrStdout(), resp.Body); err != nil {
				return fmt.Errorf("reading the response: %w", err)
			}
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("%s answered %s", target.Host, resp.Status)
			}
			return nil
		},
	}
	conn.addFlags(cmd)
	gw.addFlags(cmd)
	cmd.Flags().StringVar(&tag, "tag", "", "call the revision with this tag (its tag URL)")
	cmd.Flags().StringVarP(&data, "data", "d", "", "request body (POST unless -X says otherwise); @FILE reads it from FILE, @- from stdin")
	cmd.Flags().StringVarP(&method, "request", "X", "", "HTTP method (default GET, or POST with -d)")
	cmd.Flags().StringVar(&path, "path", "/", "request path")
	cmd.Flags().StringArrayVarP(&headers, "header", "H", nil, "request header 'Name: value'; repeatable")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the response (a cold start included)")
	return cmd
}

// requestBody is -d's body: the text itself, or a file's content with @FILE (@- is stdin).
func requestBody(data string, stdin io.Reader) (io.Reader, error) {
	name, ok := strings.CutPrefix(data, "@")
	switch {
	case data == "":
		return nil, nil
	case !ok:
		return strings.NewReader(data), nil
	case name == "-":
		return stdin, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("-d @%s: %w", name, err)
	}
	return strings.NewReader(string(b)), nil
}
