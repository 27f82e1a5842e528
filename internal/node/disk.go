package node

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/gantry-run/gantry/internal/sandbox"
)

// DefaultDiskReserveBytes is Options.DiskReserveBytes when it is zero: 2 GiB, the space
// etcd's database may grow into under its default quota.
const DefaultDiskReserveBytes = 2 << 30

// diskPeriod is how often the containers' logs are rotated and the data dir's free space
// looked at, as often as the kubelet looks at its containers' logs.
const diskPeriod = 10 * time.Second

// reasonEvicted is the reason of a pod the node evicted, as the kubelet names it.
const reasonEvicted = "Evicted"

// watchDisk rotates the containers' logs and keeps the data dir's filesystem from filling,
// every diskPeriod until ctx ends (see checkDisk).
func (n *Node) watchDisk(ctx context.Context) {
	n.every(ctx, diskPeriod, n.checkDisk)
}

// checkDisk rotates every container's log past sandbox.DefaultLogMaxBytes (keeping
// sandbox.DefaultLogMaxFiles files), then compares the free space of the filesystem that
// holds the node's state (the data dir, with etcd, the images and the sandboxes) with the
// reserve. Below it, the node is under disk pressure: image pulls are refused, and the pod
// that uses most ephemeral storage is evicted, one a period, until the free space is back
// above the reserve.
func (n *Node) checkDisk(ctx context.Context) {
	if err := n.opts.Sandboxes.RotateLogs(sandbox.DefaultLogMaxBytes, sandbox.DefaultLogMaxFiles); err != nil {
		n.log.Warn("rotating container logs", "err", err)
	}
	reserve := n.diskReserve()
	if reserve < 0 {
		return
	}
	free, err := n.freeBytes(n.opts.StateDir)
	if err != nil {
		n.log.Warn("reading the data dir's free space", "err", err)
		return
	}
	pressure := free < reserve
	if was := n.diskPressure.Swap(pressure); was && !pressure {
		n.log.Info("disk pressure over: the data dir's filesystem has its reserve free again", "free", quantity(free), "reserve", quantity(reserve))
	}
	if !pressure {
		return
	}
	n.log.Warn("disk pressure: the data dir's filesystem has less free than its reserve; refusing image pulls and evicting pods",
		"free", quantity(free), "reserve", quantity(reserve), "dir", n.opts.StateDir)
	w, used := n.largestStorageUser()
	if w == nil {
		return
	}
	msg := fmt.Sprintf("The node was low on resource: ephemeral-storage. Threshold quantity: %s, available: %s. The pod was using %s, the most on the node.",
		quantity(reserve), quantity(free), quantity(used))
	n.log.Warn("evicting the pod that uses most ephemeral storage", "pod", w.pod.Namespace+"/"+w.pod.Name, "uses", quantity(used))
	w.evictMsg.Store(&msg)
	w.poke()
}

// largestStorageUser is the worker of the pod, neither ended nor already evicted, that uses
// most ephemeral storage, and what it uses; nil when there is none.
func (n *Node) largestStorageUser() (*worker, int64) {
	n.mu.Lock()
	uids := make([]types.UID, 0, len(n.workers))
	for uid := range n.workers {
		if !n.evicted[uid] {
			uids = append(uids, uid)
		}
	}
	n.mu.Unlock()
	var best types.UID
	var bestUsed int64 = -1
	for _, uid := range uids {
		used, err := n.opts.Sandboxes.StorageUsage(string(uid))
		if err != nil {
			continue // no sandbox yet, or gone
		}
		if used > bestUsed {
			best, bestUsed = uid, used
		}
	}
	if bestUsed < 0 {
		return nil, 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	w := n.workers[best]
	if w == nil {
		return nil, 0
	}
	if n.evicted == nil {
		n.evicted = map[types.UID]bool{}
	}
	n.evicted[best] = true
	return w, bestUsed
}

// diskReserve is Options.DiskReserveBytes, or DefaultDiskReserveBytes when it is zero.
func (n *Node) diskReserve() int64 {
	if n.opts.DiskReserveBytes != 0 {
		return n.opts.DiskReserveBytes
	}
	return DefaultDiskReserveBytes
}

// pullRefusal says why image pulls are refused, or "" when they are not.
func (n *Node) pullRefusal() string {
	if !n.diskPressure.Load() {
		return ""
	}
	return fmt.Sprintf("the node is under disk pressure: its data dir's filesystem has less than %s free", quantity(n.diskReserve()))
}
