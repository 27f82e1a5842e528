package overlay

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
)

// netConfFile is the net-conf Start writes in the state directory.
const netConfFile = "net-conf.json"

// ConfiguredDevice is the vxlan device of the overlay whose state directory is stateDir, from
// the net-conf its last start wrote there; "" when it never ran one.
func ConfiguredDevice(stateDir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, netConfFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("overlay: %w", err)
	}
	var conf struct {
		Backend struct{ VNI int }
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		return "", fmt.Errorf("overlay: %s: %w", filepath.Join(stateDir, netConfFile), err)
	}
	if conf.Backend.VNI < 1 {
		return "", fmt.Errorf("overlay: %s names no VNI", filepath.Join(stateDir, netConfFile))
	}
	return DeviceName(conf.Backend.VNI), nil
}

// RemoveDevice removes the vxlan device (and with it the routes to the other nodes' pods) of
// the stopped overlay whose state directory is stateDir, for "gantry cleanup". It returns the
// device's name, or "" when there was none.
func RemoveDevice(stateDir string) (string, error) {
	name, err := ConfiguredDevice(stateDir)
	if err != nil || name == "" {
		return "", err
	}
	link, err := netlink.LinkByName(name)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("overlay: %s: %w", name, err)
	}
	if link.Type() != "vxlan" {
		return "", fmt.Errorf("overlay: %s is a %s device, not the overlay's vxlan: left alone", name, link.Type())
	}
	if err := netlink.LinkDel(link); err != nil {
		return "", fmt.Errorf("overlay: removing %s: %w", name, err)
	}
	return name, nil
}
