package provisioning_test

import (
	"math"
	"slices"
	"strings"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// offering is one way a NodeClaim may be launched.
type vOffer struct {
	it   *model.InstanceType
	zone string
	ct   string
	o    model.Offering
}

// launches returns every (type, zone, capacity type) the NodeClaim allows:
// a listed option with an available offering its requirements admit and
// the pool's node class has a subnet in.
func (v *validator) launches(nc *model.NodeClaimPlan, np *model.NodePool) []vOffer {
	subnets := map[string]bool{}
	for _, c := range v.s.NodeClasses {
		if c.Name == np.NodeClass {
			for _, sn := range c.Subnets {
				subnets[sn.Zone] = true
			}
		}
	}
	var out []vOffer
	for _, name := range nc.InstanceTypeOptions {
		it := v.instanceType(name)
		if it == nil {
			v.errorf("NodeClaim %s lists unknown instance type %s", nc.Name, name)
			continue
		}
		for _, o := range it.Offerings {
			if !o.Available || len(subnets) > 0 && !subnets[o.Zone] {
				continue
			}
			l := v.newLabels(it, np, o.Zone, o.CapacityType)
			if vAll(nc.Requirements, l) {
				out = append(out, vOffer{it: it, zone: o.Zone, ct: o.CapacityType, o: o})
			}
		}
	}
	return out
}

func (v *validator) newLabels(it *model.InstanceType, np *model.NodePool, zone, ct string) map[string]string {
	l := typeLabels(it)
	for k, val := range np.Labels {
		l[k] = val
	}
	l["karpenter.sh/nodepool"] = np.Name
	l["topology.kubernetes.io/zone"] = zone
	l["karpenter.sh/capacity-type"] = ct
	if v.s.Region != "" {
		l["topology.kubernetes.io/region"] = v.s.Region
	}
	if np.NodeClass != "" {
		l["karpenter.k8s.aws/ec2nodeclass"] = np.NodeClass
	}
	return l
}

func (v *validator) daemonOverhead(np *model.NodePool, labels map[string]string) (model.Resources, []*model.Pod) {
	var sum model.Resources
	var pods []*model.Pod
	for _, ds := range v.s.DaemonSets {
		t := ds.Template
		if t == nil || !vTolerates(t, np.Taints) || !podFitsLabels(t, labels) {
			continue
		}
		sum = sum.Add(podRequests(t))
		pods = append(pods, t)
	}
	return sum, pods
}

func (v *validator) checkNew() {
	names := map[string]bool{}
	for _, nc := range v.plan.NodeClaims {
		if names[nc.Name] {
			v.errorf("NodeClaim name %s used twice", nc.Name)
		}
		names[nc.Name] = true
		if len(nc.Name) > 253 || !dns1123.MatchString(nc.Name) || !strings.HasPrefix(nc.Name, nc.NodePool+"-") || len(nc.Name)-len(nc.NodePool) != 11 {
			v.errorf("NodeClaim name %q is not <nodepool>-<10 hex>", nc.Name)
		}
		if len(nc.Pods) == 0 {
			v.errorf("NodeClaim %s has no pods", nc.Name)
		}
		np := v.nodePool(nc.NodePool)
		if np == nil || !np.Ready {
			v.errorf("NodeClaim %s uses NodePool %s, which is missing or not ready", nc.Name, nc.NodePool)
			continue
		}
		for _, c := range v.s.NodeClasses {
			if c.Name == np.NodeClass && !c.Ready {
				v.errorf("NodeClaim %s uses node class %s, which is not ready", nc.Name, c.Name)
			}
		}
		if len(nc.InstanceTypeOptions) == 0 || nc.InstanceTypeOptions[0] != nc.InstanceType {
			v.errorf("NodeClaim %s: instance type %s is not the first option of %v", nc.Name, nc.InstanceType, nc.InstanceTypeOptions)
		}
		launches := v.launches(nc, np)
		if len(launches) == 0 {
			v.errorf("NodeClaim %s cannot be launched: no option has an allowed, available offering", nc.Name)
			continue
		}
		cheapest := math.Inf(1)
		for _, l := range launches {
			cheapest = math.Min(cheapest, l.o.PricePerHour)
		}
		if math.Abs(cheapest-nc.PricePerHour) > 1e-9 {
			v.errorf("NodeClaim %s price %v, cheapest allowed offering %v", nc.Name, nc.PricePerHour, cheapest)
		}
		named := false
		for _, l := range launches {
			if l.it.Name == nc.InstanceType && l.zone == nc.Zone && l.ct == nc.CapacityType && math.Abs(l.o.PricePerHour-nc.PricePerHour) < 1e-9 {
				named = true
			}
		}
		if !named {
			v.errorf("NodeClaim %s names %s/%s/%s, not an allowed offering at its price", nc.Name, nc.InstanceType, nc.Zone, nc.CapacityType)
		}
		var pods []*model.Pod
		var used model.Resources
		for _, k := range nc.Pods {
			if p := v.pods[k]; p != nil {
				pods = append(pods, p)
				used = used.Add(podRequests(p))
			}
		}
		k := vKubelet(np, v.s)
		for _, l := range launches {
			labels := v.newLabels(l.it, np, l.zone, l.ct)
			where := nc.Name + " as " + l.it.Name + " in " + l.zone + "/" + l.ct
			if !vAll(np.Requirements, labels) {
				v.errorf("NodeClaim %s breaks its NodePool's requirements", where)
			}
			ds, dsPods := v.daemonOverhead(np, labels)
			if alloc := vAllocatable(l.it, k); !used.Add(ds).Fits(alloc) {
				v.errorf("NodeClaim %s: pods %v + DaemonSets %v do not fit allocatable %v", where, used, ds, alloc)
			}
			if c := portClash(append(slices.Clone(dsPods), pods...)); c != "" {
				v.errorf("NodeClaim %s: %s", where, c)
			}
			for _, p := range pods {
				if !podFitsLabels(p, labels) {
					v.errorf("NodeClaim %s: pod %s/%s does not match the node's labels", where, p.Namespace, p.Name)
				}
				if !vTolerates(p, np.Taints) {
					v.errorf("NodeClaim %s: pod %s/%s does not tolerate NodePool taints", where, p.Namespace, p.Name)
				}
			}
		}
		// The final host: labels every launch agrees on.
		h := &vhost{name: nc.Name, labels: map[string]string{"kubernetes.io/hostname": nc.Name}, unknown: map[string]bool{}, isNew: true, taints: np.Taints}
		first := v.newLabels(launches[0].it, np, launches[0].zone, launches[0].ct)
		for key, val := range first {
			same := true
			for _, l := range launches[1:] {
				if v.newLabels(l.it, np, l.zone, l.ct)[key] != val {
					same = false
				}
			}
			if same {
				h.labels[key] = val
			} else {
				h.unknown[key] = true
			}
		}
		h.placed = pods
		for _, p := range pods {
			v.where[p.Namespace+"/"+p.Name] = h
		}
		v.hosts[nc.Name] = h
	}
}

// checkLimits adds up each pool's capacity: its nodes, its in-flight
// NodeClaims and, for each new NodeClaim, the largest option.
func (v *validator) checkLimits() {
	for _, np := range v.s.NodePools {
		if len(np.Limits) == 0 {
			continue
		}
		var usage model.Resources
		for _, n := range v.s.Nodes {
			if n.Labels["karpenter.sh/nodepool"] == np.Name {
				usage = usage.Add(n.Capacity)
			}
		}
		nodeNames := map[string]bool{}
		for _, n := range v.s.Nodes {
			nodeNames[n.Name] = true
		}
		for _, c := range v.s.NodeClaims {
			if c.NodePool == np.Name && !(c.NodeName != "" && nodeNames[c.NodeName]) {
				usage = usage.Add(c.Capacity)
			}
		}
		k := vKubelet(np, v.s)
		launches := 0
		for _, nc := range v.plan.NodeClaims {
			if nc.NodePool != np.Name {
				continue
			}
			launches++
			var most model.Resources
			for _, name := range nc.InstanceTypeOptions {
				if it := v.instanceType(name); it != nil {
					c := it.Capacity
					c.Pods = vMaxPods(it, k)
					most = most.Max(c)
				}
			}
			usage = usage.Add(most)
		}
		for name, lim := range np.Limits {
			if launches > 0 && usage.Get(name) > lim {
				v.errorf("NodePool %s %s usage %d exceeds limit %d", np.Name, name, usage.Get(name), lim)
			}
		}
	}
}
