// Package podnet prepares the host side of the pods' network before the first pod exists: the
// bridge the CNI bridge plugin attaches pods to, up and holding the pods' gateway address, so
// that the servers pods call (the cluster DNS, the gateway's listener for pods) can bind that
// address when gantry server starts rather than after the first pod; and bridged traffic
// passed through netfilter, so that the address translation of a Service is undone on the way
// back between two pods of one bridge; and the nftables rules that keep pods to what they may
// reach (rules.go): the gateway's ports on the host, each other, Services and the internet,
// not the host's other ports, the link-local range or the host's LAN.
//
// The bridge is made exactly as the CNI bridge plugin (isGateway, host-local IPAM) would make
// it, so the plugin adopts it: the same name, the first address of the pod range with the
// range's prefix length; unlike the plugin's, its MAC address is set, so pods coming and
// going never change the gateway's address under the others. It is left in place on stop,
// and so are the rules: the pods outlive gantry server.
package podnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// BridgeNetfilterSysctl is the switch that passes bridged IPv4 traffic through netfilter.
const BridgeNetfilterSysctl = "/proc/sys/net/bridge/bridge-nf-call-iptables"

// modprobeTimeout bounds loading br_netfilter.
const modprobeTimeout = 10 * time.Second

// DefaultLockDir holds the host-wide locks of the bridges in use: bridge-<name>.lock.
const DefaultLockDir = "/run/gantry"

// GatewayIP is the pods' gateway in podCIDR: the range's first address, as the CNI
// host-local IPAM plugin picks it and the bridge plugin puts it on the bridge.
func GatewayIP(podCIDR string) (net.IP, error) {
	_, n, err := net.ParseCIDR(podCIDR)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR %q: %w", podCIDR, err)
	}
	ip := n.IP
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	next := new(big.Int).Add(new(big.Int).SetBytes(ip), big.NewInt(1)).Bytes()
	gw := make(net.IP, len(ip))
	copy(gw[len(gw)-len(next):], next)
	if !n.Contains(gw) {
		return nil, fmt.Errorf("pod CIDR %q: too small for a gateway address", podCIDR)
	}
	return gw, nil
}

// Options configure a Network: its bridge, its ranges and what pods may reach (Policy), and
// where the bridges' locks live.
type Options struct {
	Policy
	// LockDir holds the bridges' locks: one gantry server per bridge. Default
	// DefaultLockDir.
	LockDir string
	// Logger; nil means none.
	Logger *slog.Logger
}

// Network is the part of gantry server that prepares the pods' network; it holds nothing
// while it runs.
type Network struct {
	opts    Options
	log     *slog.Logger
	gateway *net.IPNet
	ready   chan struct{}
}

// New checks opts; nothing on the host changes before Start.
func New(opts Options) (*Network, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LockDir == "" {
		opts.LockDir = DefaultLockDir
	}
	if opts.Bridge == "" || len(opts.Bridge) > unix.IFNAMSIZ-1 {
		return nil, fmt.Errorf("bridge %q: must be 1 to %d characters", opts.Bridge, unix.IFNAMSIZ-1)
	}
	gw, err := GatewayIP(opts.PodCIDR)
	if err != nil {
		return nil, err
	}
	// The rules are checked now, written at Start.
	if _, err := Ruleset(opts.Policy); err != nil {
		return nil, err
	}
	_, n, _ := net.ParseCIDR(opts.PodCIDR)
	return &Network{
		opts:    opts,
		log:     opts.Logger.With("component", "podnet"),
		gateway: &net.IPNet{IP: gw, Mask: n.Mask},
		ready:   make(chan struct{}),
	}, nil
}

// Gateway is the pods' gateway address on the bridge.
func (n *Network) Gateway() net.IP { return n.gateway.IP }

// Ready is closed once the bridge is up with the gateway address.
func (n *Network) Ready() <-chan struct{} { return n.ready }

// Start takes the bridge's host lock, makes the bridge when it is not there, with the gateway
// address, brings it up, turns on netfilter for bridged traffic when it can, writes the pods'
// isolation rules (replacing an earlier start's), then waits for ctx to end and releases the
// lock. The bridge and the rules stay after the stop, for the pods that keep running;
// `gantry cleanup` removes the rules.
//
// Two servers on one bridge would hand out the same pod addresses (each has its own address
// allocations) and fight over the gateway's ports, so the second is refused.
func (n *Network) Start(ctx context.Context) error {
	unlock, err := n.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := EnsureBridge(n.opts.Bridge, n.gateway); err != nil {
		return err
	}
	if err := EnableBridgeNetfilter(); err != nil {
		// kube-proxy then masquerades all Service traffic, which needs no bridge netfilter.
		n.log.Warn("bridged traffic does not pass netfilter; Service traffic will be masqueraded", "err", err)
	}
	if err := ApplyRules(ctx, n.opts.Policy); err != nil {
		return err
	}
	close(n.ready)
	<-ctx.Done()
	return nil
}

// lock takes the bridge's lock, or names the server that holds it.
func (n *Network) lock() (unlock func(), err error) {
	path := filepath.Join(n.opts.LockDir, "bridge-"+n.opts.Bridge+".lock")
	if err := os.MkdirAll(n.opts.LockDir, 0o755); err != nil {
		return nil, fmt.Errorf("bridge lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bridge lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := io.ReadAll(io.LimitReader(f, 256))
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("bridge %s is in use by another gantry server (%s holds %s): give this one its own --bridge and --pod-cidr",
				n.opts.Bridge, strings.TrimSpace(string(holder)), path)
		}
		return nil, fmt.Errorf("bridge lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { _ = f.Close() }, nil
}

// EnsureBridge makes bridge name, or adopts an existing one, with the address gw (the
// gateway address and the pod range's mask) and a MAC address of its own that pods coming
// and going do not change (pinHardwareAddr), and brings it up. Another IPv4 address in the
// same range on the bridge is an error, as it is for the CNI bridge plugin.
func EnsureBridge(name string, gw *net.IPNet) error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, TxQLen: -1}}
	if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating bridge %s: %w", name, err)
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if link.Type() != "bridge" {
		return fmt.Errorf("bridge %s: the link exists and is a %s, not a bridge", name, link.Type())
	}
	family := netlink.FAMILY_V4
	if gw.IP.To4() == nil {
		family = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(link, family)
	if err != nil {
		return fmt.Errorf("bridge %s: listing addresses: %w", name, err)
	}
	have := false
	for _, a := range addrs {
		switch {
		case a.IPNet.String() == gw.String():
			have = true
		case a.Contains(gw.IP) || gw.Contains(a.IP):
			return fmt.Errorf("bridge %s has the address %s, not the pods' gateway %s: remove it or choose another --bridge or --pod-cidr", name, a.IPNet, gw)
		}
	}
	if !have {
		if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: gw}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("bridge %s: adding %s: %w", name, gw, err)
		}
	}
	if err := pinHardwareAddr(link); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bridge %s: bringing it up: %w", name, err)
	}
	return nil
}

// pinHardwareAddr gives the bridge its MAC address explicitly: the one it has, or a random
// locally administered one when it has none. A Linux bridge whose address was never set
// takes the lowest address of its ports, so it changes whenever a pod with a lower one comes
// or goes; every other pod still sends to the gateway's old address, whose frames the host
// no longer takes, and its connections stall until its ARP entry is renewed (about a second,
// for every request in flight, each time a revision scales). An address set by hand stays.
// Setting the address the bridge already has changes nothing on the wire, so adopting a
// bridge with pods on it is safe.
func pinHardwareAddr(link netlink.Link) error {
	mac := link.Attrs().HardwareAddr
	if len(mac) != 6 || isZero(mac) || mac[0]&1 == 1 {
		mac = make(net.HardwareAddr, 6)
		if _, err := rand.Read(mac); err != nil {
			return fmt.Errorf("choosing a MAC address: %w", err)
		}
		mac[0] = mac[0]&^1 | 2 // unicast, locally administered
	}
	if err := netlink.LinkSetHardwareAddr(link, mac); err != nil {
		return fmt.Errorf("setting its MAC address to %s: %w", mac, err)
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// EnableBridgeNetfilter passes bridged IPv4 (and IPv6) traffic through netfilter, as k3s's
// setup does: without it a pod's reply to another pod on the bridge skips the reverse
// translation of the Service address the other pod called. It loads br_netfilter when its
// sysctls are absent, and fails when that does not work.
func EnableBridgeNetfilter() error {
	if _, err := os.Stat(BridgeNetfilterSysctl); errors.Is(err, fs.ErrNotExist) {
		ctx, cancel := context.WithTimeout(context.Background(), modprobeTimeout)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "modprobe", "br_netfilter").CombinedOutput(); err != nil {
			return fmt.Errorf("the kernel has no br_netfilter and modprobe br_netfilter failed: %w: %s", err, bytes.TrimSpace(out))
		}
	}
	for _, p := range []string{BridgeNetfilterSysctl, "/proc/sys/net/bridge/bridge-nf-call-ip6tables"} {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if strings.TrimSpace(string(b)) == "1" {
			continue
		}
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("setting %s: %w", p, err)
		}
	}
	return nil
}

// BridgeNetfilterOn reports whether bridged IPv4 traffic passes netfilter.
func BridgeNetfilterOn() bool {
	b, err := os.ReadFile(BridgeNetfilterSysctl)
	return err == nil && strings.TrimSpace(string(b)) == "1"
}
