package overlay

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func TestNetConf(t *testing.T) {
	b, err := NetConf("10.224.0.0/14", 4228, 8472)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	backend, _ := got["Backend"].(map[string]any)
	if got["Network"] != "10.224.0.0/14" || got["EnableIPv4"] != true || backend["Type"] != "vxlan" || backend["VNI"] != 4228.0 || backend["Port"] != 8472.0 {
		t.Errorf("NetConf = %s", b)
	}
	if DeviceName(4228) != "flannel.4228" {
		t.Errorf("DeviceName(4228) = %s", DeviceName(4228))
	}
}

func TestValidateNamesTheFlag(t *testing.T) {
	good := Options{NodeName: "n", ClusterCIDR: "10.224.0.0/14", PublicIP: net.ParseIP("10.228.0.2"), VNI: 1, Port: 8472,
		RESTConfig: &rest.Config{}, StateDir: t.TempDir()}
	if err := good.Validate(); err != nil {
		t.Fatalf("good options: %v", err)
	}
	bad := Options{ClusterCIDR: "10.224.0.1/14", PublicIP: net.ParseIP("::1"), VNI: 1 << 24, Port: 0}
	err := bad.Validate()
	for _, want := range []string{"node name: required", "--cluster-cidr", "--address", "--vxlan-vni: 16777216", "--vxlan-port: 0", "REST config", "state dir"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
}

func TestWriteKubeconfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	in := &rest.Config{Host: "https://10.228.0.1:6443", TLSClientConfig: rest.TLSClientConfig{
		CAData: []byte("ca"), CertData: []byte("cert"), KeyData: []byte("key")}}
	if err := WriteKubeconfig(path, in); err != nil {
		t.Fatal(err)
	}
	out, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	if out.Host != in.Host || string(out.CAData) != "ca" || string(out.CertData) != "cert" || string(out.KeyData) != "key" {
		t.Errorf("read back %+v", out)
	}
}

func TestInterfaceWith(t *testing.T) {
	iface, err := interfaceWith(net.ParseIP("127.0.0.1"))
	if err != nil || iface.Name != "lo" {
		t.Errorf("interfaceWith(127.0.0.1) = %v, %v; want lo", iface, err)
	}
	if _, err := interfaceWith(net.ParseIP("192.0.2.77")); err == nil || !strings.Contains(err.Error(), "--address: no interface of this machine has 192.0.2.77") {
		t.Errorf("an address no interface has: %v", err)
	}
}
