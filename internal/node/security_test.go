package node

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/sandbox"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment, and a malformed line
broken:x:notanumber:1
app:x:1000:1000::/home/app:/bin/sh
web:x:33:33:www-data:/var/www:/usr/sbin/nologin
`

const testGroup = `root:x:0:
staff:x:50:app,web
audio:x:29:app
app:x:1000:
`

func TestResolveUser(t *testing.T) {
	db := userDB{passwd: []byte(testPasswd), group: []byte(testGroup)}
	for _, tt := range []struct {
		spec    string
		db      userDB
		want    imageUser
		wantErr string
	}{
		{spec: "", db: db, want: imageUser{UID: 0, GID: 0, Name: "root"}},
		{spec: "app", db: db, want: imageUser{UID: 1000, GID: 1000, Name: "app", Groups: []uint32{50, 29}}},
		{spec: "1000", db: db, want: imageUser{UID: 1000, GID: 1000, Name: "app", Groups: []uint32{50, 29}}},
		{spec: "web:audio", db: db, want: imageUser{UID: 33, GID: 29, Name: "web", Groups: []uint32{50}}},
		{spec: "app:7", db: db, want: imageUser{UID: 1000, GID: 7, Name: "app", Groups: []uint32{50, 29}}},
		// A uid the image does not define: group 0, as containerd does.
		{spec: "4242", db: db, want: imageUser{UID: 4242, GID: 0}},
		{spec: "4242:4343", db: userDB{}, want: imageUser{UID: 4242, GID: 4343}},
		// A name the image does not define is an error, never root.
		{spec: "nobody", db: db, wantErr: `image user "nobody": no such user`},
		{spec: "app", db: userDB{}, wantErr: `no such user`},
		{spec: "broken", db: db, wantErr: `no such user`},
		{spec: "app:wheel", db: db, wantErr: `no such group "wheel"`},
	} {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := resolveUser(tt.spec, tt.db)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("user (-want +got):\n%s", diff)
			}
		})
	}
}

// writeLayer makes a layer directory holding files (path → content).
func writeLayer(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, body := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadImageFileMergesLayers(t *testing.T) {
	lower := writeLayer(t, map[string]string{"etc/passwd": "lower", "etc/group": "lower group"})
	upper := writeLayer(t, map[string]string{"etc/passwd": "upper"})
	if b, err := readImageFile([]string{lower, upper}, "etc/passwd"); err != nil || string(b) != "upper" {
		t.Errorf("etc/passwd = %q, %v; want the upper layer's", b, err)
	}
	if b, err := readImageFile([]string{lower, upper}, "etc/group"); err != nil || string(b) != "lower group" {
		t.Errorf("etc/group = %q, %v; want the lower layer's", b, err)
	}
	// A link out of the layer reads nothing of the host's.
	host := filepath.Join(t.TempDir(), "host-passwd")
	if err := os.WriteFile(host, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	evil := t.TempDir()
	if err := os.MkdirAll(filepath.Join(evil, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(evil, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if b, _ := readImageFile([]string{lower, evil}, "etc/passwd"); string(b) == "host" {
		t.Error("a symbolic link in a layer read a host file")
	}
	if os.Geteuid() != 0 {
		t.Log("not root: whiteouts (0:0 character devices) not checked")
		return
	}
	wh := t.TempDir()
	if err := os.MkdirAll(filepath.Join(wh, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mknodWhiteout(filepath.Join(wh, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if b, err := readImageFile([]string{lower, wh}, "etc/passwd"); err != nil || b != nil {
		t.Errorf("whited-out etc/passwd = %q, %v; want none", b, err)
	}
}

// specPod is a pod with one container c and the given volumes, for containerSpec.
func specPod(c corev1.Container, vols ...corev1.Volume) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{c}, Volumes: vols}}
}

func TestContainerSpecResolvesTheImageUser(t *testing.T) {
	layer := writeLayer(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
	img := func(user string) *image.Image {
		return &image.Image{Layers: []string{layer}, Config: image.Config{User: user, Entrypoint: []string{"/app"}}}
	}
	c := corev1.Container{Name: "c", Image: "img"}
	spec, err := containerSpec(specPod(c), &c, specInput{img: img("app")})
	if err != nil {
		t.Fatal(err)
	}
	if spec.UID != 1000 || spec.GID != 1000 || !slices.Equal(spec.Security.SupplementaryGIDs, []uint32{50, 29}) {
		t.Errorf("named USER app: %d:%d groups %v, want 1000:1000 groups [50 29]", spec.UID, spec.GID, spec.Security.SupplementaryGIDs)
	}
	// runAsUser wins, and the image user's groups do not follow it.
	c.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](7)}
	pod := specPod(c)
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{SupplementalGroups: []int64{88}}
	spec, err = containerSpec(pod, &c, specInput{img: img("app")})
	if err != nil {
		t.Fatal(err)
	}
	if spec.UID != 7 || spec.GID != 1000 || !slices.Equal(spec.Security.SupplementaryGIDs, []uint32{88}) {
		t.Errorf("runAsUser 7: %d:%d groups %v, want 7:1000 groups [88]", spec.UID, spec.GID, spec.Security.SupplementaryGIDs)
	}
	c.SecurityContext = nil
	if _, err := containerSpec(specPod(c), &c, specInput{img: img("ghost")}); err == nil || !strings.Contains(err.Error(), "no such user") {
		t.Errorf("unknown USER: %v, want a refusal", err)
	}
}

func TestRunAsNonRootRefusesRoot(t *testing.T) {
	root := &image.Image{Config: image.Config{Entrypoint: []string{"/app"}}}
	nonRoot := &image.Image{Config: image.Config{User: "1000", Entrypoint: []string{"/app"}}}
	for _, tt := range []struct {
		name    string
		img     *image.Image
		pod     *corev1.PodSecurityContext
		ctr     *corev1.SecurityContext
		wantErr string
	}{
		{name: "image root, container runAsNonRoot", img: root, ctr: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true)},
			wantErr: `container has runAsNonRoot and image will run as root (pod: "ns/p", container: c)`},
		{name: "image root, pod runAsNonRoot", img: root, pod: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)},
			wantErr: "image will run as root"},
		{name: "runAsUser 0", img: nonRoot, ctr: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](0)},
			wantErr: "container's runAsUser breaks non-root policy"},
		{name: "container says false over the pod", img: root, pod: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)},
			ctr: &corev1.SecurityContext{RunAsNonRoot: ptr.To(false)}},
		{name: "image non-root", img: nonRoot, ctr: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true)}},
		{name: "runAsUser non-root over a root image", img: root, ctr: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](5)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := corev1.Container{Name: "c", Image: "img", SecurityContext: tt.ctr}
			pod := specPod(c)
			pod.Spec.SecurityContext = tt.pod
			_, err := containerSpec(pod, &c, specInput{img: tt.img})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestContainerSpecSecurity(t *testing.T) {
	img := &image.Image{Config: image.Config{User: "1000", Entrypoint: []string{"/app"}}}
	defaults := sandbox.DefaultCapabilities
	without := func(name string) []string {
		return slices.DeleteFunc(slices.Clone(defaults), func(c string) bool { return c == name })
	}
	for _, tt := range []struct {
		name            string
		pod             *corev1.PodSecurityContext
		ctr             *corev1.SecurityContext
		allowUnconfined bool
		want            sandbox.Security
		wantErr         string
	}{
		{name: "nothing asked", want: sandbox.Security{Capabilities: defaults}},
		{name: "drop one", ctr: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"NET_RAW"}}},
			want: sandbox.Security{Capabilities: without("CAP_NET_RAW")}},
		{name: "drop ALL, add one back", ctr: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{
			Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}}},
			want: sandbox.Security{Capabilities: []string{"CAP_NET_BIND_SERVICE"}}},
		{name: "add SYS_PTRACE", ctr: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"CAP_SYS_PTRACE"}}},
			want: sandbox.Security{Capabilities: append(slices.Clone(defaults), "CAP_SYS_PTRACE")}},
		{name: "add SYS_ADMIN", ctr: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_RAW", "SYS_ADMIN"}}},
			wantErr: "spec.containers[0].securityContext.capabilities.add[1]: SYS_ADMIN may not be added"},
		{name: "add ALL", ctr: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"ALL"}}},
			wantErr: "capabilities.add[0]: ALL may not be added"},
		{name: "read-only root", ctr: &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(true)},
			want: sandbox.Security{Capabilities: defaults, ReadOnlyRoot: true}},
		{name: "RuntimeDefault", pod: &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			want: sandbox.Security{Capabilities: defaults}},
		{name: "Unconfined refused by default", pod: &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}},
			wantErr: "spec.securityContext.seccompProfile: Unconfined is not allowed by this server (gantry server --allow-unconfined-seccomp"},
		{name: "Unconfined when the server allows it", ctr: &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}},
			allowUnconfined: true, want: sandbox.Security{Capabilities: defaults, Unconfined: true}},
		{name: "the container's profile wins", pod: &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}},
			ctr:  &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			want: sandbox.Security{Capabilities: defaults}},
		{name: "Localhost refused", ctr: &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("x.json")}},
			wantErr: "spec.containers[0].securityContext.seccompProfile: Localhost profiles are not supported"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := corev1.Container{Name: "c", Image: "img", SecurityContext: tt.ctr}
			pod := specPod(c)
			pod.Spec.SecurityContext = tt.pod
			spec, err := containerSpec(pod, &c, specInput{img: img, allowUnconfined: tt.allowUnconfined})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, spec.Security); diff != "" {
				t.Errorf("security (-want +got):\n%s", diff)
			}
		})
	}
}

func TestQueueProxyGetsWhatItAsks(t *testing.T) {
	qp := corev1.Container{Name: contract.ContainerName, Image: contract.Image, Args: contract.Args}
	spec, err := containerSpec(specPod(qp), &qp, specInput{emptyLayer: "/empty", queueProxy: "/gantry"})
	if err != nil {
		t.Fatal(err)
	}
	if spec.UID != contract.UID || spec.UID == 0 || len(spec.Security.Capabilities) != 0 || spec.Security.Capabilities == nil || !spec.Security.ReadOnlyRoot {
		t.Errorf("queue-proxy: uid %d, security %+v; want non-root, no capabilities, read-only root", spec.UID, spec.Security)
	}
}

func TestVolumeMountsKeepSubPathsForTheSandbox(t *testing.T) {
	c := corev1.Container{Name: "c", Image: "img",
		Env: []corev1.EnvVar{{Name: "POD", Value: "p-1"}},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "scratch", MountPath: "/a", SubPath: "esc"},
			{Name: "scratch", MountPath: "/b", SubPathExpr: "logs/$(POD)"},
			{Name: "cfg", MountPath: "/c"},
			{Name: "cfg", MountPath: "/d", SubPath: "key", ReadOnly: false},
		}}
	pod := specPod(c,
		corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}})
	img := &image.Image{Config: image.Config{Entrypoint: []string{"/app"}}}
	spec, err := containerSpec(pod, &c, specInput{img: img, volumes: map[string]string{"scratch": "/sb/scratch", "cfg": "/node/cfg"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []sandbox.Mount{
		{Source: "/sb/scratch", SubPath: "esc", Destination: "/a"},
		{Source: "/sb/scratch", SubPath: "logs/p-1", Destination: "/b"},
		{Source: "/node/cfg", Destination: "/c", ReadOnly: true},
		{Source: "/node/cfg", SubPath: "key", Destination: "/d", ReadOnly: true},
	}
	if diff := cmp.Diff(want, spec.Mounts); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"../x", "a/../../x", "/etc"} {
		c.VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/a", SubPath: bad}}
		_, err := containerSpec(specPod(c), &c, specInput{img: img, volumes: map[string]string{"scratch": "/sb/scratch"}})
		if err == nil || !strings.Contains(err.Error(), "spec.containers[0].volumeMounts[0]") {
			t.Errorf("subPath %q: %v, want a refusal naming the field", bad, err)
		}
		if strings.Contains(bad, "..") && !errors.Is(err, sandbox.ErrSubPathEscapes) {
			t.Errorf("subPath %q: %v, want ErrSubPathEscapes", bad, err)
		}
	}
}

// mknodWhiteout makes path an overlayfs whiteout (a 0:0 character device).
func mknodWhiteout(path string) error {
	return unix.Mknod(path, unix.S_IFCHR, 0)
}
