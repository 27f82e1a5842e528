package node

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxUserDBBytes bounds how much of an image's /etc/passwd or /etc/group is read.
const maxUserDBBytes = 4 << 20

// imageUser is who a container's process runs as, resolved from the image's USER.
type imageUser struct {
	UID, GID uint32
	// Name is the user's name in the image's /etc/passwd, if it has one there.
	Name string
	// Groups are the groups of the image's /etc/group that list Name as a member.
	Groups []uint32
}

// userDB is an image's /etc/passwd and /etc/group; nil when the image has none.
type userDB struct {
	passwd, group []byte
}

// passwdEntry is one line of /etc/passwd.
type passwdEntry struct {
	name     string
	uid, gid uint32
}

// groupEntry is one line of /etc/group.
type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// parsePasswd reads name:password:uid:gid:... lines; malformed lines are skipped, as libc
// skips them.
func parsePasswd(b []byte) []passwdEntry {
	var out []passwdEntry
	eachLine(b, func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if f[0] == "" || err1 != nil || err2 != nil {
			return
		}
		out = append(out, passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid)})
	})
	return out
}

// parseGroup reads name:password:gid:member,member lines.
func parseGroup(b []byte) []groupEntry {
	var out []groupEntry
	eachLine(b, func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if f[0] == "" || err != nil {
			return
		}
		g := groupEntry{name: f[0], gid: uint32(gid)}
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		out = append(out, g)
	})
	return out
}

func eachLine(b []byte, fn func(fields []string)) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxUserDBBytes)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn(strings.Split(line, ":"))
	}
}

// resolveUser resolves an image's USER as containerd does: "user", "user:group", where each
// is a number or a name from the image's /etc/passwd and /etc/group. A user without a group
// gets its /etc/passwd group (0 when it has no entry); an empty USER is root. A name that the
// image does not define is an error (the container cannot start), never root.
func resolveUser(spec string, db userDB) (imageUser, error) {
	users, groups := parsePasswd(db.passwd), parseGroup(db.group)
	us, gs, hasGroup := strings.Cut(spec, ":")
	var u imageUser
	if us == "" {
		us = "0"
	}
	if n, err := strconv.ParseUint(us, 10, 32); err == nil {
		u.UID = uint32(n)
		for _, e := range users {
			if e.uid == u.UID {
				u.GID, u.Name = e.gid, e.name
				break
			}
		}
	} else {
		found := false
		for _, e := range users {
			if e.name == us {
				u.UID, u.GID, u.Name, found = e.uid, e.gid, e.name, true
				break
			}
		}
		if !found {
			return u, fmt.Errorf("image user %q: no such user in the image's /etc/passwd", us)
		}
	}
	if hasGroup {
		if n, err := strconv.ParseUint(gs, 10, 32); err == nil {
			u.GID = uint32(n)
		} else {
			found := false
			for _, g := range groups {
				if g.name == gs {
					u.GID, found = g.gid, true
					break
				}
			}
			if !found {
				return u, fmt.Errorf("image user %q: no such group %q in the image's /etc/group", spec, gs)
			}
		}
	}
	if u.Name != "" {
		for _, g := range groups {
			for _, m := range g.members {
				if m == u.Name && g.gid != u.GID {
					u.Groups = append(u.Groups, g.gid)
				}
			}
		}
	}
	return u, nil
}

// readUserDB reads /etc/passwd and /etc/group from an image's unpacked layers (bottom
// first), as the container will see them.
func readUserDB(layers []string) (userDB, error) {
	passwd, err := readImageFile(layers, "etc/passwd")
	if err != nil {
		return userDB{}, err
	}
	group, err := readImageFile(layers, "etc/group")
	if err != nil {
		return userDB{}, err
	}
	return userDB{passwd: passwd, group: group}, nil
}

// readImageFile reads the file at rel (a clean relative path) from the top-most layer that
// has it, the way overlayfs merges them: a whiteout (a 0:0 character device) or an opaque
// directory on the way hides what lies below. Each layer is read through os.Root, so a
// symbolic link in an image cannot reach a host file; a link that would leave its layer
// counts as no file. A missing file is nil, not an error.
func readImageFile(layers []string, rel string) ([]byte, error) {
	for i := len(layers) - 1; i >= 0; i-- {
		b, found, hidden, err := readLayerFile(layers[i], rel)
		if err != nil || found {
			return b, err
		}
		if hidden {
			return nil, nil
		}
	}
	return nil, nil
}

// readLayerFile reports whether layer holds rel (and its content), or hides it from the
// layers below.
func readLayerFile(layer, rel string) (b []byte, found, hidden bool, err error) {
	root, err := os.OpenRoot(layer)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, false, nil // the sandbox reports a missing layer when it mounts it
	}
	if err != nil {
		return nil, false, false, fmt.Errorf("reading the image's /%s: %w", rel, err)
	}
	defer root.Close()
	// A parent directory that is whited out or opaque hides rel below this layer.
	for dir := path.Dir(rel); dir != "."; dir = path.Dir(dir) {
		fi, err := root.Lstat(dir)
		if err != nil {
			continue
		}
		if isWhiteout(fi) || (fi.IsDir() && isOpaque(root, dir)) {
			hidden = true
		}
	}
	fi, err := root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, hidden, nil
	case err != nil:
		return nil, false, hidden, nil
	case isWhiteout(fi):
		return nil, false, true, nil
	}
	f, err := root.Open(rel)
	if err != nil {
		// A link out of the layer, or to another layer's file: no file here.
		return nil, false, true, nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, false, true, nil
	}
	b, err = io.ReadAll(io.LimitReader(f, maxUserDBBytes+1))
	if err != nil {
		return nil, false, false, fmt.Errorf("reading the image's /%s: %w", rel, err)
	}
	if len(b) > maxUserDBBytes {
		return nil, false, false, fmt.Errorf("the image's /%s is over %d bytes", rel, maxUserDBBytes)
	}
	return b, true, false, nil
}

func isWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || st.Rdev == 0
}

// isOpaque reports whether dir (inside root) carries overlayfs's opaque mark.
func isOpaque(root *os.Root, dir string) bool {
	f, err := root.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 1)
	n, err := unix.Fgetxattr(int(f.Fd()), "trusted.overlay.opaque", buf)
	return err == nil && n == 1 && buf[0] == 'y'
}
