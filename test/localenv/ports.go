package localenv

import (
	"fmt"
	"net"
	"strconv"
)

// Ports are the TCP ports the environment listens on, all on 127.0.0.1.
type Ports struct {
	APIServer         int `json:"apiserver"`
	EtcdClient        int `json:"etcd_client"`
	EtcdPeer          int `json:"etcd_peer"`
	Moto              int `json:"moto"`
	Scheduler         int `json:"scheduler"`
	ControllerManager int `json:"controller_manager"`
	Kwok              int `json:"kwok"`
	// Kubelet is the simulated kubelet's health endpoint.
	Kubelet int `json:"kubelet"`
}

// DefaultPorts are the fixed ports of `localenv up`.
func DefaultPorts() Ports {
	return Ports{
		APIServer:         6443,
		EtcdClient:        2379,
		EtcdPeer:          2380,
		Moto:              5000,
		Scheduler:         10259,
		ControllerManager: 10257,
		Kwok:              10247,
		Kubelet:           10248,
	}
}

func (p *Ports) fields() []*int {
	return []*int{&p.APIServer, &p.EtcdClient, &p.EtcdPeer, &p.Moto, &p.Scheduler, &p.ControllerManager, &p.Kwok, &p.Kubelet}
}

// withDefaults fills the zero ports from DefaultPorts.
func (p Ports) withDefaults() Ports {
	d := DefaultPorts()
	df := d.fields()
	for i, f := range p.fields() {
		if *f == 0 {
			*f = *df[i]
		}
	}
	return p
}

// checkFree reports the first port something already listens on.
func (p Ports) checkFree() error {
	for _, f := range p.fields() {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(*f))
		if err != nil {
			return fmt.Errorf("port %d is in use (is another environment up? see `localenv status`): %w", *f, err)
		}
		_ = l.Close()
	}
	return nil
}

// FreePorts returns n distinct TCP ports free on 127.0.0.1 right now.
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	out := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// FreePort returns one TCP port free on 127.0.0.1 right now.
func FreePort() (int, error) {
	p, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

func freePortSet() (Ports, error) {
	var p Ports
	f := p.fields()
	free, err := FreePorts(len(f))
	if err != nil {
		return Ports{}, err
	}
	for i := range f {
		*f[i] = free[i]
	}
	return p, nil
}
