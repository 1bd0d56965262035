// Package leader elects the one actuator replica that runs the controllers
// and serves Execute, with a coordination.k8s.io Lease. The others stand by
// (serving health and metrics) and take over within about a lease duration
// when the leader goes. A replica that loses the lease stops — its process
// exits and is restarted as a standby — so two replicas never write at once.
package leader

import (
	"context"
	"errors"
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

// ErrLost is returned by Term.Wait when the lease was lost while the
// context still ran.
var ErrLost = errors.New("leader lease lost")

// Options configure Elect.
type Options struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
	// Identity of this replica; default hostname plus a random suffix.
	Identity string
	// LeaseDuration is how long a lease holds without renewal (default
	// 10s); renewal and retry periods follow from it.
	LeaseDuration time.Duration
	Logger        *slog.Logger
}

// Term is one replica's term as leader.
type Term struct {
	leading atomic.Bool
	done    chan struct{}
	ctx     context.Context
}

// Leading reports whether the replica still holds the lease.
func (t *Term) Leading() bool { return t.leading.Load() }

// Wait blocks until the term ends: nil when it ended because its context
// did (shutdown: the lease is released for the next leader), ErrLost when
// renewal failed.
func (t *Term) Wait() error {
	<-t.done
	if t.ctx.Err() != nil {
		return nil
	}
	return ErrLost
}

// Elect blocks until this replica holds the lease, or ctx ends. The lease is
// then renewed in the background until ctx ends or renewal fails; the Term
// says which.
func Elect(ctx context.Context, opts Options) (*Term, error) {
	if opts.LeaseDuration <= 0 {
		opts.LeaseDuration = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Identity == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "actuator"
		}
		opts.Identity = host + "-" + rand.String(6)
	}
	term := &Term{done: make(chan struct{}), ctx: ctx}
	started := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.Name},
			Client:     opts.Client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: opts.Identity},
		},
		LeaseDuration:   opts.LeaseDuration,
		RenewDeadline:   opts.LeaseDuration * 2 / 3,
		RetryPeriod:     opts.LeaseDuration / 10,
		ReleaseOnCancel: true,
		Name:            opts.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {
				opts.Logger.Info("leader_elected", "identity", opts.Identity, "lease", opts.Namespace+"/"+opts.Name)
				term.leading.Store(true)
				close(started)
			},
			OnStoppedLeading: func() {
				term.leading.Store(false)
				opts.Logger.Info("leader_stopped", "identity", opts.Identity)
			},
			OnNewLeader: func(id string) {
				if id != opts.Identity {
					opts.Logger.Info("leader_is", "identity", id)
				}
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("leader election: %w", err)
	}
	go func() {
		defer close(term.done)
		le.Run(ctx)
		term.leading.Store(false)
	}()
	select {
	case <-started:
		return term, nil
	case <-term.done:
		return nil, fmt.Errorf("leader election: %w", context.Cause(ctx))
	}
}
