package procroute

import (
	"os"
	"path/filepath"
	"testing"
)

const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"

func write(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "route")
	if err := os.WriteFile(f, []byte(header+body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// As a pod on 10.244.0.0/16 behind 10.244.0.1 sees it (a little-endian machine's file).
func TestRead(t *testing.T) {
	f := write(t, "eth0\t0000F40A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"+
		"eth0\t00000000\t0100F40A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"+
		"bad\tZZ\n")
	routes, err := Read(f)
	if err != nil || len(routes) != 2 {
		t.Fatalf("Read = %v, %v; want two routes", routes, err)
	}
	if r := routes[0]; r.Iface != "eth0" || r.Dst.String() != "10.244.0.0" || r.Mask.String() != "ffff0000" || r.Default() {
		t.Errorf("first route %+v; want 10.244.0.0/16 on eth0", r)
	}
	if !routes[1].Default() {
		t.Errorf("second route %+v is not the default one", routes[1])
	}
	if gw, err := DefaultGateway(f); err != nil || gw.String() != "10.244.0.1" {
		t.Errorf("DefaultGateway = %v, %v; want 10.244.0.1", gw, err)
	}
	if gw, err := DefaultGateway(write(t, "eth0\t0000F40A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n")); err != nil || gw != nil {
		t.Errorf("without a default route: %v, %v; want none", gw, err)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("a missing file: no error")
	}
}

func TestAddr(t *testing.T) {
	for in, want := range map[string]string{"0100F40A": "10.244.0.1", "00000000": "0.0.0.0", "FFFFFFFF": "255.255.255.255"} {
		if ip, err := Addr(in); err != nil || ip.String() != want {
			t.Errorf("Addr(%q) = %v, %v; want %s", in, ip, err, want)
		}
	}
	for _, in := range []string{"", "0100F4", "0100F40A00", "ZZ00F40A"} {
		if _, err := Addr(in); err == nil {
			t.Errorf("Addr(%q): no error", in)
		}
	}
}
