// Package leader elects the one watcher replica that streams to the
// planner, with a coordination.k8s.io Lease, so two replicas never stream
// (and forward plans) at once.
package leader

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Options configure Run.
type Options struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
	// Identity of this replica; default hostname plus a random suffix.
	Identity string
	// LeaseDuration is how long a lease holds without renewal (default
	// 10s): a replica that vanishes is replaced within about this long.
	// Renewal and retry periods follow from it.
	LeaseDuration time.Duration
	Logger        *slog.Logger
}

// Run takes part in the election until ctx is done. Whenever this replica
// becomes the leader it calls lead with a context that ends when the
// leadership does; lead must return then. After losing the lease it stands
// for election again. On shutdown the lease is released so another replica
// takes over at once.
func Run(ctx context.Context, opts Options, lead func(ctx context.Context)) error {
	if opts.LeaseDuration <= 0 {
		opts.LeaseDuration = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Identity == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "watcher"
		}
		opts.Identity = host + "-" + rand.String(6)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.Name},
		Client:     opts.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: opts.Identity},
	}
	// done receives when lead returns: a new term starts only after the
	// previous one has wound down.
	done := make(chan struct{}, 1)
	var started atomic.Bool
	cfg := leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   opts.LeaseDuration,
		RenewDeadline:   opts.LeaseDuration * 2 / 3,
		RetryPeriod:     opts.LeaseDuration / 10,
		ReleaseOnCancel: true,
		Name:            opts.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				opts.Logger.Info("leader_elected", "identity", opts.Identity, "lease", opts.Namespace+"/"+opts.Name)
				started.Store(true)
				defer func() { done <- struct{}{} }()
				lead(ctx)
			},
			OnStoppedLeading: func() {
				opts.Logger.Info("leader_lost", "identity", opts.Identity)
			},
			OnNewLeader: func(id string) {
				if id != opts.Identity {
					opts.Logger.Info("leader_is", "identity", id)
				}
			},
		},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(cfg)
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(ctx)
		if started.Swap(false) {
			<-done
		}
	}
	return nil
}
