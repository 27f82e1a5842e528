package overlay

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestConfiguredDevice(t *testing.T) {
	dir := t.TempDir()
	if name, err := ConfiguredDevice(dir); name != "" || err != nil {
		t.Fatalf("no net-conf: %q, %v; want none", name, err)
	}
	conf, err := NetConf("10.42.0.0/16", 7, DefaultPort)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, netConfFile), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	if name, err := ConfiguredDevice(dir); name != "flannel.7" || err != nil {
		t.Fatalf("VNI 7: %q, %v; want flannel.7", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, netConfFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ConfiguredDevice(dir); err == nil {
		t.Fatal("a broken net-conf gave no error")
	}
}

// TestRemoveDevice removes a vxlan device named as the overlay's, in a network namespace of
// its own, and leaves any other kind of device of that name alone.
func TestRemoveDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a network namespace")
	}
	// The thread stays in the new namespace until the test ends; Go then drops the thread.
	runtime.LockOSThread()
	host, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	defer func() { _ = netns.Set(host) }()

	dir := t.TempDir()
	conf, _ := NetConf("10.42.0.0/16", 4242, DefaultPort)
	if err := os.WriteFile(filepath.Join(dir, netConfFile), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "flannel.4242"}, VxlanId: 4242, Port: DefaultPort}
	if err := netlink.LinkAdd(vx); err != nil {
		t.Fatal(err)
	}
	if name, err := RemoveDevice(dir); name != "flannel.4242" || err != nil {
		t.Fatalf("RemoveDevice: %q, %v; want flannel.4242 removed", name, err)
	}
	if _, err := netlink.LinkByName("flannel.4242"); !errors.As(err, &netlink.LinkNotFoundError{}) {
		t.Fatalf("flannel.4242 still there: %v", err)
	}
	if name, err := RemoveDevice(dir); name != "" || err != nil {
		t.Fatalf("again: %q, %v; want nothing to do", name, err)
	}
	// Not a vxlan: refused, kept.
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "flannel.4242"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := RemoveDevice(dir); err == nil {
		t.Fatal("a bridge named flannel.4242 was removed")
	}
	if _, err := netlink.LinkByName("flannel.4242"); err != nil {
		t.Fatalf("the bridge is gone: %v", err)
	}
}
