// Command kubelet-sim registers a kwok-managed Node for every running EC2
// instance tagged for the cluster (in moto) and deletes the Node when the
// instance goes away. See package kubelet.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/flotilla-dev/flotilla/test/kubelet"
)

func main() {
	var opts kubelet.Options
	fs := flag.NewFlagSet("kubelet-sim", flag.ExitOnError)
	opts.RegisterFlags(fs)
	_ = fs.Parse(os.Args[1:])

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := kubelet.Serve(ctx, opts, log); err != nil {
		fmt.Fprintln(os.Stderr, "kubelet-sim:", err)
		os.Exit(1)
	}
}
