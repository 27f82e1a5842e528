package cli

import (
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"

	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func newRouteCommand() *cobra.Command {
	var conn connFlags
	var gw gatewayFlags
	cmd := &cobra.Command{
		Use:     "route",
		Aliases: []string{"routes", "rt"},
		Short:   "List and describe the routes of Services (their URLs and traffic)",
		Example: `  gantry route list
  gantry route describe hello`,
	}
	conn.addFlags(cmd)
	gw.addFlags(cmd)
	cmd.AddCommand(newRouteListCommand(&conn, &gw), newRouteDescribeCommand(&conn, &gw))
	return cmd
}

func newRouteListCommand(conn *connFlags, gw *gatewayFlags) *cobra.Command {
	var out outputFlags
	var all bool
	cmd := &cobra.Command{
		Use:     "list [NAME]",
		Aliases: []string{"ls"},
		Short:   "List routes: URL and readiness",
		Example: `  gantry route list
  gantry route list hello -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: withClient(conn, &out, func(cmd *cobra.Command, args []string, k *knClient) error {
			list := &servingv1.RouteList{}
			if err := k.List(ctxOf(cmd), list, k.listOpts(all)...); err != nil {
				return apiError(err, k.host)
			}
			if len(args) == 1 {
				list.Items = filterByName(list.Items, args[0], func(r servingv1.Route) string { return r.Name })
			}
			if out.machine() {
				return out.print(cmd.OutOrStdout(), list)
			}
			return gw.printer().RouteList(cmd.OutOrStdout(), list.Items)
		}),
	}
	out.addFlags(cmd)
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list across all namespaces")
	return cmd
}

func newRouteDescribeCommand(conn *connFlags, gw *gatewayFlags) *cobra.Command {
	var out outputFlags
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a route: URL, traffic targets with their tag URLs, conditions",
		Example: `  gantry route describe hello
  gantry route describe hello -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: withClient(conn, &out, func(cmd *cobra.Command, args []string, k *knClient) error {
			rt := &servingv1.Route{}
			if err := k.Get(ctxOf(cmd), types.NamespacedName{Namespace: k.namespace, Name: args[0]}, rt); err != nil {
				return k.check(err, "route", args[0])
			}
			if out.machine() {
				return out.print(cmd.OutOrStdout(), rt)
			}
			return gw.printer().DescribeRoute(cmd.OutOrStdout(), rt)
		}),
	}
	out.addFlags(cmd)
	return cmd
}
