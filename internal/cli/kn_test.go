package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestKnCommandsHaveExamples: every command of the Knative group shows an example in --help.
func TestEveryCommandHasAnExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" {
			t.Errorf("%q has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCommand())
}

func run(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	root := NewRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

// TestFlagErrorsComeFirst: bad flags are refused before the CLI looks for a server, so the
// message is about the flag (here no server exists at all).
func TestFlagErrorsComeFirst(t *testing.T) {
	noServer := map[string]string{"GANTRY_DATA_DIR": t.TempDir(), "KUBECONFIG": ""}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"service", "update", "hello", "--traffic", "a=50,b=40"}, "--traffic: the percents sum to 90, want 100"},
		{[]string{"service", "create", "hello", "--image", "x", "--env", "NOEQUALS"}, `--env "NOEQUALS": want KEY=VALUE`},
		{[]string{"service", "create", "hello", "--image", "x", "--annotation", "=v"}, `--annotation "=v"`},
		{[]string{"service", "create", "hello", "--image", "x", "--scale-min", "5", "--scale-max", "2"}, "--scale-min 5 is above --scale-max 2"},
		{[]string{"service", "create", "hello", "--image", "x", "--port", "70000"}, "--port 70000"},
		{[]string{"service", "update", "hello", "--tag", "stable"}, `--tag "stable": want REVISION=TAG`},
		{[]string{"service", "list", "-o", "table"}, "-o table: want yaml or json"},
		{[]string{"deploy", t.TempDir()}, "no Go program here"},
		{[]string{"deploy", "/nonexistent-dir"}, "no such directory"},
		{[]string{"service", "list"}, "gantry server is not running here: no kubeconfig at " + filepath.Join(noServer["GANTRY_DATA_DIR"], "kubeconfig.yaml")},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := run(t, noServer, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error has more than one line: %q", err)
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, _, err := run(t, nil, "completion", shell)
		if err != nil || !strings.Contains(out, "gantry") {
			t.Errorf("completion %s: err %v, %d bytes", shell, err, len(out))
		}
	}
	if _, _, err := run(t, nil, "completion", "tcsh"); err == nil {
		t.Error("completion tcsh: no error")
	}
}

func TestDiskReserveFlag(t *testing.T) {
	var q quantityFlag
	if err := q.Set("2Gi"); err != nil || q.bytes != 2<<30 || q.String() != "2Gi" {
		t.Fatalf("2Gi: %v, %d, %q", err, q.bytes, q.String())
	}
	for _, bad := range []string{"lots", "-1Gi"} {
		if err := (&quantityFlag{}).Set(bad); err == nil {
			t.Errorf("--disk-reserve %q accepted", bad)
		}
	}
	if _, _, err := run(t, nil, "server", "--disk-reserve", "lots"); err == nil || !strings.Contains(err.Error(), "--disk-reserve") {
		t.Errorf("a bad --disk-reserve: %v, want an error naming the flag", err)
	}
}

func TestReservedFlags(t *testing.T) {
	for _, flag := range []string{"--reserved-cpu", "--reserved-memory"} {
		if _, _, err := run(t, nil, "server", flag, "lots"); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("a bad %s: %v, want an error naming the flag", flag, err)
		}
	}
}
