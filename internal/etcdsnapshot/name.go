// Package etcdsnapshot owns the snapshots of the embedded etcd: their file names and
// directory, taking one from a running etcd and checking it as etcd's tooling does, keeping
// the newest few, the scheduler that takes them while gantry server runs, and restoring one
// into a stopped server's data dir.
package etcdsnapshot

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// The names snapshots are taken under: gantry etcd-snapshot save uses OnDemand unless told
// another, gantry server's schedule uses Scheduled. Retention counts each name apart, so
// pruning the scheduled snapshots never removes one a user took.
const (
	OnDemand  = "on-demand"
	Scheduled = "scheduled"
)

// fileExt ends every snapshot's file name: the file is etcd's database with its SHA-256 at the
// end, as etcdctl snapshot save writes it.
const fileExt = ".db"

// timeLayout is the time in a file name: UTC, to the second, sorting as it reads.
const timeLayout = "20060102T150405Z"

// maxNameLen bounds a name, so a file name stays well within any filesystem's limit.
const maxNameLen = 64

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// ValidateName checks a snapshot name: lowercase letters, digits and '-', starting and ending
// with a letter or digit, as a Kubernetes name.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("name must not be empty")
	case len(name) > maxNameLen:
		return fmt.Errorf("name %q is longer than %d characters", name, maxNameLen)
	case !nameRE.MatchString(name):
		return fmt.Errorf("name %q may hold only lowercase letters, digits and '-', and must start and end with a letter or digit", name)
	}
	return nil
}

// FileName is the file a snapshot named name taken at t is saved as:
// <name>-<YYYYMMDDTHHMMSSZ>.db.
func FileName(name string, t time.Time) string {
	return name + "-" + t.UTC().Format(timeLayout) + fileExt
}

// ParseFileName reads a file name that FileName made; ok is false for any other name, whose
// file is not a snapshot this package manages.
func ParseFileName(file string) (name string, t time.Time, ok bool) {
	base, found := strings.CutSuffix(file, fileExt)
	if !found {
		return "", time.Time{}, false
	}
	i := strings.LastIndexByte(base, '-')
	if i < 0 {
		return "", time.Time{}, false
	}
	name, stamp := base[:i], base[i+1:]
	if ValidateName(name) != nil {
		return "", time.Time{}, false
	}
	t, err := time.Parse(timeLayout, stamp)
	if err != nil {
		return "", time.Time{}, false
	}
	return name, t, true
}
