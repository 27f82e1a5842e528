package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/gantry-run/gantry/internal/kn"
	"github.com/gantry-run/gantry/internal/serving"
)

// outputFlags is -o: empty for the human layout, yaml or json for the objects themselves.
type outputFlags struct {
	format string
}

func (o *outputFlags) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "", "print the object(s) as yaml or json instead of the human layout")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
}

func (o *outputFlags) validate() error {
	switch o.format {
	case "", "yaml", "json":
		return nil
	}
	return fmt.Errorf("-o %s: want yaml or json", o.format)
}

// machine reports whether objects are printed as yaml or json.
func (o *outputFlags) machine() bool { return o.format != "" }

// print writes obj (an object or a list) as yaml or json, with its apiVersion and kind and
// without managed fields, as kubectl does.
func (o *outputFlags) print(w io.Writer, obj runtime.Object) error {
	obj = obj.DeepCopyObject()
	setKind(obj)
	if items, err := meta.ExtractList(obj); err == nil {
		for _, it := range items {
			setKind(it)
		}
		_ = meta.SetList(obj, items)
	}
	var out []byte
	var err error
	switch o.format {
	case "json":
		out, err = json.MarshalIndent(obj, "", "    ")
		out = append(out, '\n')
	default:
		out, err = yaml.Marshal(obj)
	}
	if err != nil {
		return fmt.Errorf("printing %s: %w", o.format, err)
	}
	_, err = w.Write(out)
	return err
}

// setKind fills in TypeMeta, which typed clients leave empty, and drops managed fields.
func setKind(obj runtime.Object) {
	if gvks, _, err := serving.Scheme().ObjectKinds(obj); err == nil && len(gvks) > 0 {
		obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	} else {
		obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	}
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
}

// gatewayFlags say where the gateway answers: --gateway, $GANTRY_GATEWAY or 127.0.0.1:8080,
// gantry server's default.
type gatewayFlags struct {
	addr string
}

const defaultGateway = "127.0.0.1:8080"

func (g *gatewayFlags) addFlags(cmd *cobra.Command) {
	def := os.Getenv("GANTRY_GATEWAY")
	if def == "" {
		def = defaultGateway
	}
	cmd.PersistentFlags().StringVar(&g.addr, "gateway", def, "host:port of gantry server's gateway, used in printed URLs and by invoke ($GANTRY_GATEWAY)")
}

// port is the gateway's port, 0 when the address has none.
func (g *gatewayFlags) port() int {
	i := strings.LastIndex(g.addr, ":")
	if i < 0 {
		return 0
	}
	p, _ := strconv.Atoi(g.addr[i+1:])
	return p
}

// printer is the human printer for now, with the gateway's port.
func (g *gatewayFlags) printer() kn.Printer {
	return kn.Printer{Now: now(), GatewayPort: g.port()}
}
