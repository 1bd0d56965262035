package localenv_test

import (
	"context"
	"fmt"
	"strconv"

	"github.com/flotilla-dev/flotilla/test/localenv"
)

// A Flotilla service joins a test environment as one more process.
func ExampleEnv_StartProcess() {
	ctx := context.Background()
	env, err := localenv.Start(ctx, localenv.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer env.Stop(ctx)

	port, err := localenv.FreePort()
	if err != nil {
		fmt.Println(err)
		return
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	err = env.StartProcess(ctx, localenv.Process{
		Name:      "planner",
		Argv:      []string{"/path/to/planner", "--listen=" + addr, "--metrics=127.0.0.1:9090"},
		Env:       env.Environ(), // KUBECONFIG, AWS_ENDPOINT_URL, AWS_REGION, credentials, ...
		HealthURL: "http://127.0.0.1:9090/healthz",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = env.SetVar("FLOTILLA_PLANNER_ADDR", addr)
}
