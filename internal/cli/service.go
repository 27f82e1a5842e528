package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/kn"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// defaultWaitTimeout is how long create, update and deploy wait for a revision, kn's default.
const defaultWaitTimeout = 600 * time.Second

func newServiceCommand() *cobra.Command {
	var conn connFlags
	var gw gatewayFlags
	cmd := &cobra.Command{
		Use:     "service",
		Aliases: []string{"services", "ksvc"},
		Short:   "Create, update, list, describe and delete Knative Services",
		Example: `  gantry service create hello --image 127.0.0.1:5000/hello --env TARGET=Gantry
  gantry service list
  gantry service update hello --traffic hello-00001=80,@latest=20
  gantry service delete hello`,
	}
	conn.addFlags(cmd)
	gw.addFlags(cmd)
	cmd.AddCommand(newServiceCreateCommand(&conn, &gw), newServiceUpdateCommand(&conn, &gw),
		newServiceListCommand(&conn, &gw), newServiceDescribeCommand(&conn, &gw), newServiceDeleteCommand(&conn))
	return cmd
}

// serviceFlags are create's and update's flags, as kn names them.
type serviceFlags struct {
	image            string
	env, annotations []string
	port             int32
	concurrencyLimit int64
	scaleMin         int
	scaleMax         int
	traffic, tags    []string
	untags           []string
	tagRevision      bool
	wait             waitFlags
	out              outputFlags
}

// waitFlags are --no-wait and --wait-timeout.
type waitFlags struct {
	noWait  bool
	timeout time.Duration
}

func (w *waitFlags) addFlags(cmd *cobra.Command, what string) {
	cmd.Flags().BoolVar(&w.noWait, "no-wait", false, "do not wait until "+what)
	cmd.Flags().DurationVar(&w.timeout, "wait-timeout", defaultWaitTimeout, "how long to wait until "+what)
}

// Which flags a command of the service group has.
type serviceFlagSet int

const (
	createFlags serviceFlagSet = iota
	updateFlags
	deployFlags // no --image (deploy builds it) and no traffic flags
)

func (f *serviceFlags) addFlags(cmd *cobra.Command, set serviceFlagSet) {
	fs := cmd.Flags()
	if set != deployFlags {
		fs.StringVar(&f.image, "image", "", "image to run (required on create)")
	}
	fs.StringArrayVarP(&f.env, "env", "e", nil, "environment variable KEY=VALUE, or KEY- to remove it; repeatable")
	fs.StringArrayVarP(&f.annotations, "annotation", "a", nil, "annotation KEY=VALUE for the service and its revisions, or KEY- to remove it; repeatable")
	fs.Int32VarP(&f.port, "port", "p", 0, "port the container listens on (its $PORT; default 8080)")
	fs.Int64Var(&f.concurrencyLimit, "concurrency-limit", 0, "most requests one pod serves at once (0: no limit)")
	fs.IntVar(&f.scaleMin, "scale-min", 0, "fewest pods (autoscaling.knative.dev/min-scale)")
	fs.IntVar(&f.scaleMax, "scale-max", 0, "most pods (autoscaling.knative.dev/max-scale; 0: no limit)")
	if set != deployFlags {
		fs.StringArrayVar(&f.tags, "tag", nil, "give a revision a tag URL of its own: REVISION=TAG or @latest=TAG; repeatable")
		fs.BoolVar(&f.tagRevision, "tag-revision", false, "give the new revision a tag named after it, so it has a URL of its own")
	}
	if set == updateFlags {
		fs.StringArrayVar(&f.traffic, "traffic", nil, "split traffic: REVISION=PERCENT, TAG=PERCENT or @latest=PERCENT, comma-separated or repeated; must sum to 100")
		fs.StringArrayVar(&f.untags, "untag", nil, "remove a tag; repeatable")
	}
	f.wait.addFlags(cmd, "the revision is ready")
	f.out.addFlags(cmd)
}

// options parses the flags into kn.ServiceOptions; only flags given change the service.
func (f *serviceFlags) options(cmd *cobra.Command) (kn.ServiceOptions, error) {
	var o kn.ServiceOptions
	var err error
	if err = f.out.validate(); err != nil {
		return o, err
	}
	o.Image = f.image
	if o.Env, err = kn.ParseKeyValues("env", f.env); err != nil {
		return o, err
	}
	if o.Annotations, err = kn.ParseKeyValues("annotation", f.annotations); err != nil {
		return o, err
	}
	fs := cmd.Flags()
	if fs.Changed("port") {
		if f.port < 1 || f.port > 65535 {
			return o, fmt.Errorf("--port %d: want a port from 1 to 65535", f.port)
		}
		o.Port = &f.port
	}
	if fs.Changed("concurrency-limit") {
		if f.concurrencyLimit < 0 || f.concurrencyLimit > 1000 {
			return o, fmt.Errorf("--concurrency-limit %d: want 0 (no limit) to 1000", f.concurrencyLimit)
		}
		o.ConcurrencyLimit = &f.concurrencyLimit
	}
	if fs.Changed("scale-min") {
		o.ScaleMin = &f.scaleMin
	}
	if fs.Changed("scale-max") {
		o.ScaleMax = &f.scaleMax
	}
	if err = kn.ValidateScale(o.ScaleMin, o.ScaleMax); err != nil {
		return o, err
	}
	if o.Traffic, err = kn.ParseTraffic(f.traffic); err != nil {
		return o, err
	}
	if o.Tags, err = kn.ParseTags(f.tags); err != nil {
		return o, err
	}
	o.Untags = f.untags
	return o, nil
}

func newServiceCreateCommand(conn *connFlags, gw *gatewayFlags) *cobra.Command {
	var f serviceFlags
	cmd := &cobra.Command{
		Use:   "create NAME --image IMAGE",
		Short: "Create a Service and wait until its first revision serves",
		Long: `Create a Knative Service running IMAGE and wait until its first revision is ready
and its route serves it, showing each step with the time it took; then print its URL.
A revision that fails prints the reason from its conditions and exits non-zero.`,
		Example: `  gantry service create hello --image 127.0.0.1:5000/hello --env TARGET=Gantry
  gantry service create busy --image 127.0.0.1:5000/hello --concurrency-limit 10 --scale-min 1 --scale-max 5
  gantry service create quiet --image 127.0.0.1:5000/hello --no-wait -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(cmd)
			if err != nil {
				return err
			}
			k, err := conn.connect()
			if err != nil {
				return err
			}
			svc, err := kn.NewService(k.namespace, args[0], opts)
			if err != nil {
				return err
			}
			p := newProgress(cmd.ErrOrStderr(), time.Now())
			ctx := ctxOf(cmd)
			if err := k.Create(ctx, svc); err != nil {
				if apierrors.IsAlreadyExists(err) {
					return fmt.Errorf("service %q already exists in namespace %q (change it with gantry service update)", svc.Name, k.namespace)
				}
				return fmt.Errorf("creating service %s: %w", svc.Name, apiError(err, k.host))
			}
			p.header("Creating service '%s' in namespace '%s':", svc.Name, k.namespace)
			return k.finishRollout(cmd, gw, &f, svc, nil, p)
		},
	}
	f.addFlags(cmd, createFlags)
	return cmd
}

func newServiceUpdateCommand(conn *connFlags, gw *gatewayFlags) *cobra.Command {
	var f serviceFlags
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Change a Service (a new revision when its template changes) and wait until it serves",
		Long: `Change a Knative Service: its image, environment, port, concurrency, scale or
annotations (a new revision), or its traffic split and tags (no new revision). It waits until
the result serves, as create does, and prints the URL.`,
		Example: `  gantry service update hello --env TARGET=v2
  gantry service update hello --traffic hello-00001=80,@latest=20 --tag hello-00001=stable
  gantry service update hello --traffic @latest=100 --untag stable
  gantry service update hello --scale-min 0 --scale-max 3`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(cmd)
			if err != nil {
				return err
			}
			k, err := conn.connect()
			if err != nil {
				return err
			}
			p := newProgress(cmd.ErrOrStderr(), time.Now())
			svc, before, err := k.updateService(ctxOf(cmd), args[0], func(svc *servingv1.Service) error {
				return kn.ApplyServiceOptions(svc, opts)
			})
			if err != nil {
				return err
			}
			p.header("Updating service '%s' in namespace '%s':", svc.Name, k.namespace)
			return k.finishRollout(cmd, gw, &f, svc, before, p)
		},
	}
	f.addFlags(cmd, updateFlags)
	return cmd
}

// updateService reads the Service, lets change edit it and writes it back, again on a
// conflict. It returns the Service after and before the change; an unchanged one is not
// written.
func (k *knClient) updateService(ctx context.Context, name string, change func(*servingv1.Service) error) (after, before *servingv1.Service, err error) {
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		after = &servingv1.Service{}
		if err := k.Get(ctx, types.NamespacedName{Namespace: k.namespace, Name: name}, after); err != nil {
			return err
		}
		before = after.DeepCopy()
		if err := change(after); err != nil {
			return err
		}
		if equality.Semantic.DeepEqual(before.Spec, after.Spec) && equality.Semantic.DeepEqual(before.Annotations, after.Annotations) {
			return nil
		}
		return k.Update(ctx, after)
	})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, k.check(err, "service", name)
		}
		var se apierrors.APIStatus
		if asStatus(err, &se) {
			return nil, nil, fmt.Errorf("updating service %s: %w", name, err)
		}
		return nil, nil, apiError(err, k.host)
	}
	return after, before, nil
}

// finishRollout waits for the rollout of svc (unless --no-wait) and prints the result: the
// steps on stderr, the URL (or the object with -o) on stdout. before is the Service before
// an update, nil after a create.
func (k *knClient) finishRollout(cmd *cobra.Command, gw *gatewayFlags, f *serviceFlags, svc, before *servingv1.Service, p *progress) error {
	ctx := ctxOf(cmd)
	stderr, stdout := cmd.ErrOrStderr(), cmd.OutOrStdout()
	verb, previous := "created", ""
	if before != nil {
		verb, previous = "updated", before.Status.LatestCreatedRevisionName
		if before.Generation == svc.Generation {
			verb = "unchanged"
		}
	}
	if f.wait.noWait {
		fmt.Fprintf(stderr, "Service '%s' %s in namespace '%s'.\n", svc.Name, verb, k.namespace)
		if f.out.machine() {
			return f.out.print(stdout, svc)
		}
		return nil
	}
	done, rev, err := k.waitRollout(ctx, svc.Name, svc.Generation, previous, f.wait.timeout, p)
	if err != nil {
		return err
	}
	if f.tagRevision {
		tagged, _, err := k.updateService(ctx, svc.Name, func(s *servingv1.Service) error {
			if hasTag(s, rev) {
				return nil
			}
			traffic, err := kn.EditTraffic(s.Spec.Traffic, nil, []kn.TagAssignment{{Ref: rev, Tag: rev}}, nil)
			s.Spec.Traffic = traffic
			return err
		})
		if err != nil {
			return err
		}
		quiet := newProgress(io.Discard, p.start) // the same revision again: its steps are said
		if done, _, err = k.waitRollout(ctx, svc.Name, tagged.Generation, rev, f.wait.timeout, quiet); err != nil {
			return err
		}
		p.say(fmt.Sprintf("Tag %s added.", rev))
	}
	if f.out.machine() {
		return f.out.print(stdout, done)
	}
	pr := gw.printer()
	fmt.Fprintf(stderr, "\nService '%s' %s, latest revision '%s', is available at URL:\n", done.Name, verb, rev)
	fmt.Fprintln(stdout, pr.URL(done.Status.URL))
	if f.tagRevision {
		for _, t := range done.Status.Traffic {
			if t.Tag == rev {
				fmt.Fprintf(stderr, "Revision '%s' alone is at URL:\n", rev)
				fmt.Fprintln(stdout, pr.URL(t.URL))
			}
		}
	}
	return nil
}

func hasTag(svc *servingv1.Service, tag string) bool {
	for _, t := range svc.Spec.Traffic {
		if t.Tag == tag {
			return true
		}
	}
	return false
}

func newServiceListCommand(conn *connFlags, gw *gatewayFlags) *cobra.Command {
	var out outputFlags
	var all bool
	cmd := &cobra.Command{
		Use:     "list [NAME]",
		Aliases: []string{"ls"},
		Short:   "List Services: URL, latest revision, age, conditions",
		Example: `  gantry service list
  gantry service list hello -o yaml
  gantry service list -A`,
		Args: cobra.MaximumNArgs(1),
		RunE: withClient(conn, &out, func(cmd *cobra.Command, args []string, k *knClient) error {
			list := &servingv1.ServiceList{}
			if err := k.List(ctxOf(cmd), list, k.listOpts(all)...); err != nil {
				return apiError(err, k.host)
			}
			if len(args) == 1 {
				list.Items = filterByName(list.Items, args[0], func(s servingv1.Service) string { return s.Name })
			}
			if out.machine() {
				return out.print(cmd.OutOrStdout(), list)
			}
			return gw.printer().ServiceList(cmd.OutOrStdout(), list.Items)
		}),
	}
	out.addFlags(cmd)
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list across all namespaces")
	return cmd
}

func (k *knClient) listOpts(all bool) []client.ListOption {
	if all {
		return nil
	}
	return []client.ListOption{client.InNamespace(k.namespace)}
}

func filterByName[T any](items []T, name string, nameOf func(T) string) []T {
	var out []T
	for _, it := range items {
		if nameOf(it) == name {
			out = append(out, it)
		}
	}
	return out
}

func newServiceDescribeCommand(conn *connFlags, gw *gatewayFlags) *cobra.Command {
	var out outputFlags
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a Service: URL, revisions with their traffic, image and pods, conditions",
		Example: `  gantry service describe hello
  gantry service describe hello -o json`,
		Args: cobra.ExactArgs(1),
		RunE: withClient(conn, &out, func(cmd *cobra.Command, args []string, k *knClient) error {
			ctx := ctxOf(cmd)
			svc, err := k.getService(ctx, args[0])
			if err != nil {
				return err
			}
			if out.machine() {
				return out.print(cmd.OutOrStdout(), svc)
			}
			revs := &servingv1.RevisionList{}
			if err := k.List(ctx, revs, client.InNamespace(k.namespace), client.MatchingLabels{servingv1.ServiceLabelKey: svc.Name}); err != nil {
				return apiError(err, k.host)
			}
			return gw.printer().DescribeService(cmd.OutOrStdout(), svc, revs.Items)
		}),
	}
	out.addFlags(cmd)
	return cmd
}

func (k *knClient) getService(ctx context.Context, name string) (*servingv1.Service, error) {
	svc := &servingv1.Service{}
	if err := k.Get(ctx, types.NamespacedName{Namespace: k.namespace, Name: name}, svc); err != nil {
		return nil, k.check(err, "service", name)
	}
	return svc, nil
}

func newServiceDeleteCommand(conn *connFlags) *cobra.Command {
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete Services with their revisions and routes",
		Example: `  gantry service delete hello
  gantry service delete hello busy --no-wait`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := conn.connect()
			if err != nil {
				return err
			}
			ctx := ctxOf(cmd)
			// Check every name first, so a typo deletes nothing.
			for _, name := range args {
				if _, err := k.getService(ctx, name); err != nil {
					return err
				}
			}
			for _, name := range args {
				if err := k.deleteAndWait(ctx, &servingv1.Service{}, "service", name, wait, cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			return nil
		},
	}
	wait.addFlags(cmd, "it is gone")
	return cmd
}

// deleteAndWait deletes obj's kind named name (its children follow, by the garbage collector) and,
// unless --no-wait, waits until it is gone.
func (k *knClient) deleteAndWait(ctx context.Context, obj client.Object, kind, name string, wait waitFlags, w io.Writer) error {
	obj.SetNamespace(k.namespace)
	obj.SetName(name)
	if err := k.Delete(ctx, obj); err != nil {
		return k.check(err, kind, name)
	}
	if !wait.noWait {
		key := types.NamespacedName{Namespace: k.namespace, Name: name}
		if err := waitGone(ctx, wait.timeout, func(ctx context.Context) error { return k.Get(ctx, key, obj) }); err != nil {
			return fmt.Errorf("deleting %s %s: %w", kind, name, err)
		}
	}
	fmt.Fprintf(w, "%s '%s' deleted in namespace '%s'.\n", capitalize(kind), name, k.namespace)
	return nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
