package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/flotilla-dev/flotilla/api/snapshot"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
	"github.com/flotilla-dev/flotilla/services/internal/catalog"
	"github.com/flotilla-dev/flotilla/services/planner/internal/server"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

const planUsage = `usage: planner plan --pods FILE --nodepools FILE [--nodes FILE] [--daemonsets FILE]
                    [--catalog FILE] [--region REGION] [--disruption] [-o json|text]

Answers "what would Flotilla launch for these pods, at what cost, and why?"
  --pods        kubectl get pods -A -o json (pods without spec.nodeName are pending)
  --nodepools   multi-document YAML of NodePool, EC2NodeClass and Provisioner objects
  --nodes       kubectl get nodes -o json (the nodes bound pods run on)
  --daemonsets  kubectl get ds -A -o json
  --catalog     CSV: instance_type,vcpu,memory_mib,arch,gpus,max_pods,zone,capacity_type,price_per_hour
                (default: the embedded catalogue of --region; its spot prices are synthetic)
Exit codes: 0 a plan was printed, 2 bad input (the message names the file, object and field).
`

// runPlan is the what-if CLI: it builds a snapshot from files and prints the
// same PlanResponse the Plan RPC returns.
func runPlan(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("planner plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, planUsage) }
	var files snapshot.Files
	fs.StringVar(&files.Pods, "pods", "", "")
	fs.StringVar(&files.NodePools, "nodepools", "", "")
	fs.StringVar(&files.Nodes, "nodes", "", "")
	fs.StringVar(&files.DaemonSets, "daemonsets", "", "")
	catalogFile := fs.String("catalog", "", "")
	region := fs.String("region", "us-east-1", "")
	disruption := fs.Bool("disruption", false, "")
	output := fs.String("o", "text", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "planner plan: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if files.Pods == "" || files.NodePools == "" {
		fmt.Fprint(stderr, "planner plan: --pods and --nodepools are required\n\n"+planUsage)
		return 2
	}
	if *output != "json" && *output != "text" {
		fmt.Fprintf(stderr, "planner plan: -o %q: want json or text\n", *output)
		return 2
	}
	if *catalogFile == "" {
		if _, err := catalog.Region(*region); err != nil {
			fmt.Fprintf(stderr, "planner plan: --region %q: %v (or give --catalog)\n", *region, err)
			return 2
		}
	}
	snap, err := snapshot.FromFiles(files)
	if err != nil {
		fmt.Fprintf(stderr, "planner plan: %v\n", err)
		return 2
	}
	snap.Region = *region
	if *catalogFile != "" {
		if snap.InstanceTypes, err = readCatalog(*catalogFile); err != nil {
			fmt.Fprintf(stderr, "planner plan: %v\n", err)
			return 2
		}
	}
	p := server.New(slog.New(slog.NewTextHandler(io.Discard, nil)), catalog.Region, *region)
	resp, err := p.Plan(context.Background(), &plannerv1.PlanRequest{Snapshot: snap, Disruption: *disruption})
	if err != nil {
		fmt.Fprintf(stderr, "planner plan: %s\n", status.Convert(err).Message())
		if status.Code(err) == codes.InvalidArgument {
			return 2
		}
		return 1
	}
	if *output == "json" {
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: true}.Marshal(resp)
		if err != nil {
			fmt.Fprintf(stderr, "planner plan: encode: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	printPlan(stdout, resp)
	return 0
}

func readCatalog(path string) ([]*clusterv1.InstanceType, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	defer f.Close()
	types, err := catalog.ReadCSV(f, path)
	if err != nil {
		return nil, err
	}
	if len(types) == 0 {
		return nil, errors.New(path + ": the catalogue has no offerings")
	}
	return types, nil
}

// printPlan writes the plan as tables a person reads in a terminal.
func printPlan(w io.Writer, r *plannerv1.PlanResponse) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(r.GetNodeClaims()) > 0 {
		fmt.Fprintln(tw, "NEW NODE\tNODEPOOL\tINSTANCE TYPE\tZONE\tCAPACITY\t$/HOUR\tPODS\tALSO ACCEPTABLE")
		for _, nc := range r.GetNodeClaims() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.4f\t%d\t%s\n", nc.GetName(), nc.GetNodePool(), nc.GetInstanceType(),
				nc.GetZone(), nc.GetCapacityType(), nc.GetPricePerHour(), len(nc.GetPods()), options(nc))
		}
		fmt.Fprintln(tw)
	}
	if len(r.GetExistingNodes()) > 0 {
		fmt.Fprintln(tw, "EXISTING NODE\tIN FLIGHT\tPODS PLACED")
		for _, n := range r.GetExistingNodes() {
			fmt.Fprintf(tw, "%s\t%v\t%d\n", n.GetNode(), n.GetInFlight(), len(n.GetPods()))
		}
		fmt.Fprintln(tw)
	}
	if len(r.GetUnschedulable()) > 0 {
		fmt.Fprintln(tw, "UNSCHEDULABLE POD\tREASON")
		for _, u := range r.GetUnschedulable() {
			fmt.Fprintf(tw, "%s\t%s\n", u.GetPod(), u.GetReason())
		}
		fmt.Fprintln(tw)
	}
	for _, d := range r.GetDisruptions() {
		fmt.Fprintf(tw, "DISRUPT\t%s\t%s\tsaves $%.4f/h\t%s\n", strings.TrimPrefix(d.GetReason().String(), "DISRUPTION_REASON_"),
			strings.Join(d.GetNodes(), ","), d.GetSavingsPerHour(), d.GetBudget())
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d new node(s), %d pod(s) on existing capacity, %d unschedulable; new capacity $%.4f/hour\n",
		len(r.GetNodeClaims()), placed(r), len(r.GetUnschedulable()), r.GetTotalPricePerHour())
}

func options(nc *clusterv1.NodeClaimPlan) string {
	opts := nc.GetInstanceTypeOptions()
	const show = 4
	if len(opts) <= 1 {
		return "-"
	}
	rest := opts[1:]
	if len(rest) > show {
		return strings.Join(rest[:show], ",") + fmt.Sprintf(" (+%d)", len(rest)-show)
	}
	return strings.Join(rest, ",")
}

func placed(r *plannerv1.PlanResponse) int {
	n := 0
	for _, p := range r.GetExistingNodes() {
		n += len(p.GetPods())
	}
	return n
}
