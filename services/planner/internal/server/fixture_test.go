package server

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/flotilla-dev/flotilla/services/internal/catalog"
)

var updateFixtures = flag.Bool("update-catalog", false, "rewrite the solver's catalogue fixture from the embedded catalogue")

// catalogFixture is the full us-east-1 catalogue in the --catalog format,
// for the solver's benchmarks and cost tests, which import nothing but the
// standard library.
var catalogFixture = filepath.Join("..", "provisioning", "testdata", "catalog-us-east-1.csv")

func TestCatalogFixture(t *testing.T) {
	its, err := catalog.Region("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString("instance_type,vcpu,memory_mib,arch,gpus,max_pods,zone,capacity_type,price_per_hour\n")
	for _, it := range its {
		c := it.GetCapacity()
		for _, o := range it.GetOfferings() {
			if !o.GetAvailable() {
				continue
			}
			fmt.Fprintf(&b, "%s,%d,%d,%s,%d,%d,%s,%s,%g\n", it.GetName(), c.GetCpuMillis()/1000, c.GetMemoryBytes()>>20, it.GetArch(),
				c.GetExtended()["nvidia.com/gpu"], c.GetPods(), o.GetZone(), o.GetCapacityType(), o.GetPricePerHour())
		}
	}
	if *updateFixtures {
		if err := os.WriteFile(catalogFixture, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(catalogFixture)
	if err != nil {
		t.Fatalf("%v (go test ./internal/server -run TestCatalogFixture -update-catalog writes it)", err)
	}
	if !slices.Equal(have, b.Bytes()) {
		t.Errorf("%s differs from the embedded catalogue; rerun with -update-catalog", catalogFixture)
	}
}
